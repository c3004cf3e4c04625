"""A utility's endpoint on a local port for the sink's and the client's unit tests, answering with a handler.

The sink delivers over aiohttp, which has no mock transport: requests really cross a socket, and each is
handed, as an ``httpx.Request``, to the test's handler (in a thread, so it may block), whose ``httpx.Response``
is sent back. A handler that raises ``httpx.TransportError`` drops the connection instead of answering.
"""

import asyncio
import socket
import threading
from collections.abc import Callable

import httpx
from aiohttp import web

Handler = Callable[[httpx.Request], httpx.Response]


class Endpoint:
    """An aiohttp server in a thread of its own; ``handler`` answers every request (set it per test)."""

    def __init__(self) -> None:
        self.handler: Handler = lambda _request: httpx.Response(201)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1/tasks"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="utility-endpoint", daemon=True)
        self._thread.start()
        app = web.Application()
        app.router.add_post("/v1/tasks", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = httpx.Request("POST", str(request.url), headers=dict(request.headers), content=body)
        try:
            # in a thread: a handler that holds one request back (a slow utility) holds back no other
            answer = await asyncio.get_running_loop().run_in_executor(None, self.handler, seen)
        except httpx.TransportError:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=599)  # never reaches the client: the connection is gone
        headers = {k: v for k, v in answer.headers.items() if k.lower() in {"retry-after", "content-type"}}
        return web.Response(status=answer.status_code, body=answer.content, headers=headers)

    def close(self) -> None:
        """Stop serving and end the thread."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
