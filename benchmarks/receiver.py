"""A utility's business system that answers at once: the sinks' benchmark measures the sinks, not the far end.

``python -m benchmarks.receiver`` serves ``POST /v1/tasks`` with ``200 {"status": "created"}`` and nothing
else (no storage, no faults, no progress), and ``GET /stats`` with the requests and distinct idempotency
keys seen; it prints its URL as one line of JSON on standard output and runs until terminated. It is an
aiohttp server in a process of its own, so it takes none of the measured sink's interpreter lock.
"""

import argparse
import asyncio
import json
import socket
import subprocess
import sys
from dataclasses import dataclass, field

import httpx
from aiohttp import web

_CREATED = b'{"status":"created"}'


@dataclass
class _Counts:
    requests: int = 0
    keys: set[str] = field(default_factory=set)


class Receiver:
    """The receiver's child process, started on construction."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", "benchmarks.receiver"]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own module
        assert self._process.stdout is not None  # noqa: S101 - requested above
        line = self._process.stdout.readline()
        if not line:
            message = f"the receiver exited with code {self._process.wait()} before announcing its URL"
            raise RuntimeError(message)
        self.url: str = json.loads(line)["url"]

    def unique(self) -> int:
        """Distinct idempotency keys received so far."""
        return int(httpx.get(f"{self.url}/stats", timeout=10).raise_for_status().json()["unique"])

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        self._process.terminate()
        self._process.wait(timeout=30)
        if self._process.stdout is not None:
            self._process.stdout.close()


def build_app() -> web.Application:
    """The receiver's routes over a fresh count."""
    counts = _Counts()

    async def tasks(request: web.Request) -> web.Response:
        await request.read()
        counts.requests += 1
        counts.keys.add(request.headers.get("Idempotency-Key", ""))
        return web.Response(body=_CREATED, content_type="application/json")

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"requests": counts.requests, "unique": len(counts.keys)})

    app = web.Application()
    app.router.add_post("/v1/tasks", tasks)
    app.router.add_get("/stats", stats)
    return app


async def _serve(port: int) -> None:
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
        port = int(probe.getsockname()[1])
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    await asyncio.Event().wait()


def main() -> int:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.receiver", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    asyncio.run(_serve(parser.parse_args().port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
