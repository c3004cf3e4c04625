r"""JSON as the intakes accept it: only what every later step (Avro, JSON on Kafka, logs) can carry.

:func:`loads` refuses, with the path of the offending value where there is one:

* ``NaN``/``Infinity`` literals, and numbers that overflow a double (400, 422);
* integers outside a signed 64-bit long (422): Avro cannot hold them, and Python's own limit on digits
  would otherwise surface as an unexpected error;
* nesting deeper than :data:`MAX_DEPTH` (400): no record is that deep, and recursion is not free;
* strings or keys holding a lone UTF-16 surrogate (``"\ud800"``), which no UTF-8 encoder accepts (422).

Example:
    >>> loads('{"a": [1, 2]}')
    {'a': [1, 2]}
"""

import json
import math
import re
from typing import Any, Final

MAX_DEPTH: Final = 64
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")


class JsonRefused(ValueError):
    """The text is not JSON the intakes accept; ``status`` is 400 or 422, ``field`` the path or ``None``."""

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


def loads(text: str) -> Any:
    """Parse ``text`` as strict JSON.

    Raises:
        JsonRefused: the text is not JSON, or holds a value the intakes cannot carry.
    """
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError as exc:
        raise JsonRefused(400, f"body nests deeper than {MAX_DEPTH} levels") from exc
    except JsonRefused:
        raise
    except ValueError as exc:
        # The parser's message quotes no input, only its position.
        raise JsonRefused(400, f"body is not JSON: {exc}") from exc
    _check(value)
    return value


def _constant(name: str) -> float:
    raise JsonRefused(400, f"body is not JSON: {name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonRefused(422, f"number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    # Checked by length first: converting thousands of digits is slow, and Python refuses past 4300.
    value = int(text) if len(text.lstrip("-")) <= len(str(_LONG_MAX)) else None
    if value is None or not _LONG_MIN <= value <= _LONG_MAX:
        raise JsonRefused(422, f"integer {text[:40]} is out of range (a signed 64-bit integer)")
    return value


def _check(value: Any) -> None:
    """Refuse deep nesting and lone surrogates, walking iteratively (the depth is what is being checked)."""
    pending: list[tuple[Any, str, int]] = [(value, "", 0)]
    while pending:
        node, path, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise JsonRefused(400, f"body nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, str):
            _text(node, path)
        elif isinstance(node, dict):
            for key, child in node.items():
                child_path = f"{path}.{key}" if path else key
                _text(key, child_path)
                pending.append((child, child_path, depth + 1))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                pending.append((child, f"{path}.{index}" if path else str(index), depth + 1))


def _text(text: str, path: str) -> None:
    if _SURROGATE.search(text) is not None:
        field = path.encode("utf-8", "backslashreplace").decode() or None
        raise JsonRefused(422, f"{field or 'body'} holds a lone surrogate, which is not text", field)
