"""The status-callback intake: the HTTP intake, plus the task view its answers are checked against.

:class:`CallbackIntake` reads the task-status topic to its end before it listens (so the first reports are
not answered 404 from an empty view), follows it while serving, and tells the handler when a report it
accepted was not stored, so it no longer counts for the task (:mod:`connectors.status.task_view`).
"""

import threading
import time
from typing import Any, Final

import structlog

from connectors.runtime.http_intake import HttpIntake, IntakeHandler, IntakeRequest, IntakeResponse
from connectors.status.callback import StatusCallbackHandler
from connectors.status.task_view import TaskView

log = structlog.get_logger(__name__)

_CATCH_UP_STEP_S: Final = 5.0  # how often a stop is noticed, and the wait logged, while the view catches up


class ViewedIntake(HttpIntake):
    """An :class:`HttpIntake` whose answers are checked against the delivered tasks (``view``)."""

    def __init__(self, handler: IntakeHandler, *, view: TaskView, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._view = view

    def run(self) -> None:
        """Catch the view up, then serve until stopped; the view stops after the last answer."""
        view_stop = threading.Event()
        reader = threading.Thread(target=self._view.run, args=(view_stop,), name=f"{self.stage}-view", daemon=True)
        reader.start()
        try:
            began = time.monotonic()
            while not self._view.wait_caught_up(_CATCH_UP_STEP_S) and not self._stop.is_set():
                log.info("task_view_catching_up", stage=self.stage, waited_s=round(time.monotonic() - began))
            super().run()  # returns at once when stopped meanwhile, closing the port and the producer
        finally:
            view_stop.set()
            reader.join()


class CallbackIntake(ViewedIntake):
    """A :class:`ViewedIntake` serving a :class:`StatusCallbackHandler`."""

    def __init__(self, handler: StatusCallbackHandler, *, view: TaskView, **kwargs: Any) -> None:
        super().__init__(handler, view=view, **kwargs)
        self._callbacks = handler

    def answer(self, request: IntakeRequest) -> IntakeResponse:
        """As :meth:`HttpIntake.answer`; a report not stored is released from the view."""
        try:
            response = super().answer(request)
        except BaseException:
            self._callbacks.release(request)
            raise
        self._callbacks.settle(request)
        return response

    def not_stored(self, request: IntakeRequest) -> None:
        """Kafka did not take the report: it no longer counts for its task."""
        self._callbacks.release(request)
