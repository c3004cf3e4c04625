"""structlog set-up: JSON lines in production, readable lines in a terminal, personal data always masked.

``configure_logging()`` is called once, by the entry point. Every string value of every event passes
through :func:`routing.privacy.mask_text`, and keys that name secrets are replaced outright, so neither a
careless ``log.info(..., body=raw)`` nor an exception message can leak a phone or ID number.

Libraries that log through the standard library (kafka-python's "Connection failed" during an outage) go
through the same chain, from WARNING up, as ``library_logged`` events: the log stays one JSON object a line.
"""

import json as jsonlib
import logging
import os
import socket
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from connectors.runtime.build import VERSION
from routing.privacy import mask_text

# Characters that JSON leaves raw but many line readers (Python's splitlines, JavaScript, log shippers) take
# for line breaks; escaped, a logged text can never split its JSON line in two.
_LINE_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}
_SECRET_KEYS = frozenset({"token", "password", "secret", "authorization", "api_key", "client_secret"})


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: "***" if str(k).lower() in _SECRET_KEYS else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Structlog processor: mask phone and ID numbers in every value, blank out secrets."""
    for key, value in event_dict.items():
        event_dict[key] = "***" if key.lower() in _SECRET_KEYS else _mask(value)
    return event_dict


class _NamedPrintLogger(structlog.WriteLogger):
    """A logger that knows the name it was asked for (``structlog.get_logger(__name__)``).

    Each line is one write of the text and its newline: the children of ``ubridge run`` share their parent's
    output, and a line printed in two writes (``print``) could take another process's line between them.
    """

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._file, str(args[0]) if args else "ubridge")


_HOST = socket.gethostname()


def add_logger_name(logger: Any, _: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Structlog processor: the name the logger was asked for."""
    event_dict.setdefault("logger", getattr(logger, "name", "ubridge"))
    return event_dict


def add_origin(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Structlog processor: what an SRE filters on across processes and hosts (service, version, host, pid, logger).

    The pid is read on every line: worker processes fork from the parent after logging is configured.
    """
    add_logger_name(logger, method, event_dict)
    event_dict["service"] = "ubridge"
    event_dict["version"] = VERSION
    event_dict["host"] = _HOST
    event_dict["pid"] = os.getpid()
    return event_dict


@dataclass(frozen=True)
class LogOptions:
    """What :func:`configure_logging` was last given, for worker processes to log alike."""

    json: bool = False
    level: str = "info"


_active = [LogOptions()]


def logging_options() -> LogOptions:
    """The format and level this process logs with."""
    return _active[0]


def configure_logging(*, json: bool, level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog for the whole process.

    Args:
        json: One JSON object per line (production) instead of the console renderer.
        level: Minimum level name (debug, info, warning, error).
        stream: Where lines go; standard error by default.
    """
    _active[0] = LogOptions(json=json, level=level)
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_one_line, ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            # a terminal reader knows which process and host they are looking at
            add_origin if json else add_logger_name,
            mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_NamedPrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers = [handler for handler in root.handlers if not isinstance(handler, _ToStructlog)]
    root.addHandler(_ToStructlog(logging.WARNING))
    root.setLevel(min(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))


def reset_logging() -> None:
    """Undo :func:`configure_logging`: structlog's defaults, and no standard-library records handed to it.

    For a process that runs commands in turn (the tests): the handler left on the root logger would otherwise
    send a library's warning through structlog's defaults, to standard output.
    """
    structlog.reset_defaults()
    root = logging.getLogger()
    root.handlers = [handler for handler in root.handlers if not isinstance(handler, _ToStructlog)]


def _one_line(obj: Any, **options: Any) -> str:
    return jsonlib.dumps(obj, **options).translate(_LINE_BREAKS)


class _ToStructlog(logging.Handler):
    """Hands standard-library records to structlog, so they are masked and rendered like ubridge's own."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        structlog.get_logger(record.name).log(record.levelno, "library_logged", logger=record.name, message=message)
