"""What ``ubridge config check`` reports: one :class:`Problem` per bad key, naming the file and the key.

Pydantic's errors and the hand-written validators' messages (``<file>: <key>: <reason>``) both become
problems here, with the nearest valid spelling added for an unknown key or value.

Example:
    >>> str(Problem("service-areas.yaml", "areas[3].services[0]", "unknown service 'WATR'"))
    "service-areas.yaml: areas[3].services[0]: unknown service 'WATR'"
"""

import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from routing.spelling import did_you_mean

Severity = Literal["error", "warning"]

_LEADING_KEY: Final = re.compile(r"([^\s:]+): (.*)", re.DOTALL)
_QUOTED: Final = re.compile(r"'([^']*)'")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration; an ``error`` stops ``run``, a ``warning`` is only printed."""

    file: str
    key: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        label = "warning: " if self.severity == "warning" else ""
        return f"{where}: {label}{self.message}"


class FileUnusable(Exception):
    """A referenced file cannot be read or parsed; ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def read_document(path: Path, *, referenced_from: str, key: str) -> Any:
    """The parsed YAML of a file a configuration refers to.

    Raises:
        FileUnusable: A missing or unreadable file is reported at the referring key; bad YAML at its line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FileUnusable(Problem(referenced_from, key, f"cannot read {path}: {reason}")) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise FileUnusable(Problem(str(path), where, f"not valid YAML: {reason}")) from exc


def key_of(loc: Sequence[int | str]) -> str:
    """``("areas", 3, "services", 0)`` → ``areas[3].services[0]``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def from_validation(error: ValidationError, file: str, model: type[BaseModel]) -> list[Problem]:
    """Every error of a pydantic validation of ``model``, with a suggestion for unknown keys and values."""
    return [
        Problem(file, key_of(item["loc"]), item["msg"] + _suggestion(item, model))
        for item in error.errors(include_url=False)
    ]


def from_message(message: str, file: str) -> list[Problem]:
    """Problems from a validator's ``<file>: <key>: <reason>`` lines (a line without the file continues one)."""
    prefix = f"{file}: "
    entries: list[str] = []
    for line in message.splitlines():
        if line.startswith(prefix) or not entries:
            entries.append(line.removeprefix(prefix))
        else:
            entries[-1] += " " + line.strip()
    problems = []
    for entry in entries:
        match = _LEADING_KEY.fullmatch(entry)
        key, reason = (match.group(1), match.group(2)) if match else ("", entry)
        problems.append(Problem(file, key, reason))
    return problems


def _suggestion(item: Any, model: type[BaseModel]) -> str:
    loc = item["loc"]
    if item["type"] == "extra_forbidden" and loc:
        return did_you_mean(loc[-1], _fields_at(model, loc[:-1]))
    if item["type"] == "literal_error":
        return did_you_mean(item["input"], _QUOTED.findall(str(item.get("ctx", {}).get("expected", ""))))
    return ""


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys allowed where ``loc`` points, found by walking the model's annotations."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    return [name for member in _members(current) if _is_model(member) for name in member.model_fields]


def _step(annotation: Any, part: int | str) -> Any:
    for member in _members(annotation):
        origin = get_origin(member)
        if isinstance(part, int) and origin in (list, tuple):
            return get_args(member)[0]
        if isinstance(part, str) and _is_model(member) and part in member.model_fields:
            return member.model_fields[part].annotation
        if isinstance(part, str) and origin is dict:
            return get_args(member)[1]
    return None


def _members(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
