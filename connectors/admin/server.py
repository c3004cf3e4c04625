"""Serves the admin router with uvicorn in a thread of its own (until the process's one HTTP layer takes it).

Example:
    >>> server = AdminServer(admin_router(service, tokens), service, host="127.0.0.1", port=8093)
    >>> server.start()
    >>> server.stop()
"""

import threading
import time
from typing import Final

import uvicorn
from fastapi import APIRouter, FastAPI

from connectors.admin.service import AdminService
from connectors.runtime.build import VERSION

_START_S: Final = 10.0


class AdminServer:
    """One FastAPI app with the admin router, on ``host:port`` (0: a free port)."""

    def __init__(self, router: APIRouter, service: AdminService, *, host: str, port: int) -> None:
        app = FastAPI(title="ubridge admin", version=VERSION)
        app.include_router(router)
        # log_config None: uvicorn's records go through the process's structlog set-up like every other
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._service = service
        self._thread = threading.Thread(target=self._server.run, name="admin-api", daemon=True)

    def start(self) -> None:
        """Serve in the background; return once listening.

        Raises:
            RuntimeError: the server did not start (the port is taken).
        """
        self._thread.start()
        deadline = time.monotonic() + _START_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                message = "the admin API did not start (is its port in use?)"
                raise RuntimeError(message)
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """``http://host:port`` as bound."""
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving and close the service's Kafka clients."""
        self._server.should_exit = True
        self._thread.join(_START_S)
        self._service.close()
