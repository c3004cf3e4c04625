import io
import json
import logging
import os
import socket
from importlib.metadata import version

import structlog

from connectors.runtime.logs import configure_logging


def emit(**fields: object) -> dict[str, object]:
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    structlog.get_logger("t").info("task_delivered", **fields)
    structlog.reset_defaults()
    line: dict[str, object] = json.loads(stream.getvalue())
    return line


def test_json_line_has_event_level_and_time() -> None:
    """Production lines are JSON with the event name, level and an ISO timestamp."""
    line = emit(task_id="t-1")
    assert (line["event"], line["level"], line["task_id"]) == ("task_delivered", "info", "t-1")
    assert str(line["timestamp"]).endswith("Z")


def test_phone_and_id_numbers_are_masked_everywhere() -> None:
    """Phone and ID numbers never reach a log line, even nested or inside free text."""
    line = emit(error="contact 13912345678 failed", body={"lxrsjh": "13812345678", "ids": ["11010519491231002X"]})
    text = json.dumps(line)
    for secret in ("13912345678", "13812345678", "11010519491231002X"):
        assert secret not in text


def test_secret_keys_are_blanked() -> None:
    """Values under secret-looking keys are replaced, at any depth."""
    line = emit(token="abc", headers={"Authorization": "Bearer abc"})
    assert (line["token"], line["headers"]) == ("***", {"Authorization": "***"})


def test_debug_is_filtered_at_info() -> None:
    """A debug event below the configured level writes nothing."""
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    structlog.get_logger("t").debug("record_filtered")
    structlog.reset_defaults()
    assert stream.getvalue() == ""


def test_standard_library_warnings_become_masked_json_lines() -> None:
    """kafka-python's stdlib errors are JSON library_logged events, masked; its info chatter stays out."""
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    logging.getLogger("kafka.conn").error("Connection failed to %s for 13912345678", "127.0.0.1:9092")
    logging.getLogger("kafka.conn").info("Connecting")
    structlog.reset_defaults()
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["event"], line["logger"], line["level"], line["message"]) == (
        "library_logged",
        "kafka.conn",
        "error",
        "Connection failed to 127.0.0.1:9092 for 139****5678",
    )


def test_text_with_unicode_line_breaks_stays_on_one_line() -> None:
    """NEL, LINE and PARAGRAPH SEPARATOR in a logged value are escaped: splitlines() sees one line."""
    line = "a\x85b\u2028c\u2029d 中文"
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    structlog.get_logger("t").warning("request_rejected", reason=line)
    structlog.reset_defaults()
    (text,) = stream.getvalue().splitlines()
    assert json.loads(text)["reason"] == line


def test_every_json_line_says_which_service_version_host_process_and_logger() -> None:
    """An SRE can filter a shared log store by service, version, host, pid and the logger that wrote it."""
    line = emit(task_id="t-1")
    assert (line["service"], line["logger"], line["pid"]) == ("ubridge", "t", os.getpid())
    assert line["host"] == socket.gethostname()
    assert line["version"] == version("ubridge")


def test_standard_library_lines_carry_their_logger_and_origin() -> None:
    """A library's record names its own logger, beside the same origin fields as ubridge's lines."""
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    logging.getLogger("kafka.conn").warning("connection to %s failed", "127.0.0.1:9092")
    structlog.reset_defaults()
    line = json.loads(stream.getvalue())
    assert (line["logger"], line["service"], line["pid"]) == ("kafka.conn", "ubridge", os.getpid())
