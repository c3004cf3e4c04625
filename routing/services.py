"""The services a project may need and a utility may provide, as data (``deploy/config/services.yaml``).

The seeds link more than water, gas and heat ("水电气暖信等联动服务", 003), so the set is configuration: each
service has a code (``POWER``), a Chinese and an English name, and the words a form may use for it. Mapping and
configuration loading check a service against this table; past the edges a service is a plain code.

Example:
    >>> table = load_service_table(Path("deploy/config/services.yaml"))
    >>> table.of_words("供电", "service"), table.name("TELECOM")
    ('POWER', '通信')
"""

from functools import cache
from pathlib import Path
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.errors import DataError
from routing.spelling import did_you_mean
from routing.yaml_files import read_model

Text = Annotated[str, Field(min_length=1)]
Code = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,31}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The seed sentence the services come from."""

    document: Text
    quote: Text


class ServiceEntry(_Strict):
    """A service's Chinese and English names and the other words a form may use for it."""

    name: Text
    english: Text
    words: list[Text] = []


class ServiceTable(_Strict):
    """The configured services, in the order figures and messages list them."""

    source: Source
    services: Annotated[dict[Code, ServiceEntry], Field(min_length=1)]

    @model_validator(mode="after")
    def _unambiguous(self) -> Self:
        seen: dict[str, str] = {}
        for code, entry in self.services.items():
            for word in {code, entry.name, entry.english.upper(), *entry.words}:
                if seen.setdefault(word, code) != code:
                    message = f"services.{code}: {word!r} also means {seen[word]}"
                    raise ValueError(message)
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes, in configuration order."""
        return tuple(self.services)

    def name(self, code: str) -> str:
        """The Chinese name of a service (the code itself for one no longer configured, e.g. in old records)."""
        entry = self.services.get(code)
        return entry.name if entry else code

    def names(self) -> str:
        """The Chinese names with the codes, for an error message: ``供水/供气/… (WATER/GAS/…)``."""
        return f"{'/'.join(e.name for e in self.services.values())} ({'/'.join(self.services)})"

    def check(self, code: object, field: str) -> str:
        """``code`` if it is a configured service code.

        Raises:
            DataError: It is not; the message lists the configured codes or the nearest one.
        """
        if isinstance(code, str) and code in self.services:
            return code
        hint = did_you_mean(code, self.codes) or f"; expected one of {list(self.codes)}"
        raise DataError(field, f"unknown service {str(code)[:40]!r}{hint}")

    def find(self, words: str) -> str | None:
        """The service ``words`` name: its code or English name (any case), Chinese name or one of its words."""
        text = words.strip()
        upper = text.upper()
        for code, entry in self.services.items():
            if upper in (code, entry.english.upper()) or text in (entry.name, *entry.words):
                return code
        return None

    def of_words(self, words: str, field: str) -> str:
        """The service ``words`` name (see :meth:`find`).

        Raises:
            DataError: The words name no configured service.
        """
        code = self.find(words)
        if code is None:
            raise DataError(field, f"{words.strip()[:20]!r} is not a service: {self.names()}")
        return code


def configured_service(value: str) -> str:
    """``value`` if the shipped table configures it: a pydantic validator for configuration files naming services.

    Raises:
        ValueError: It does not; with the nearest code or the configured ones.
    """
    codes = shipped_services().codes
    if value not in codes:
        hint = did_you_mean(value, codes) or f"; configured: {', '.join(codes)} (services.yaml)"
        message = f"unknown service {value!r}{hint}"
        raise ValueError(message)
    return value


def load_service_table(path: Path) -> ServiceTable:
    """The services file, validated.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid; the message names the file and the bad key.
    """
    return read_model(path, ServiceTable)


SHIPPED: Final = Path(__file__).resolve().parents[1] / "deploy" / "config" / "services.yaml"


@cache
def shipped_services() -> ServiceTable:
    """The shipped ``deploy/config/services.yaml``, read once."""
    return load_service_table(SHIPPED)
