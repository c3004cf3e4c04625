"""Which utility serves which service where: the versioned service-area table (DESIGN §6).

The table maps (region-code prefix, service) to a utility; for a site the longest matching prefix wins, so
a county gas company can carve its county out of a city-wide one:

.. code-block:: yaml

    version: "2026-11-01"
    areas:
      - {utility: yantai-gas, region_prefix: "3706", services: [GAS]}
      - {utility: zhaoyuan-gas, region_prefix: "370685", services: [GAS]}

Example:
    >>> area = {"utility": "yantai-gas", "region_prefix": "3706", "services": ["GAS"]}
    >>> table = parse_service_areas({"version": "1", "areas": [area]})
    >>> table.utility_for("370602", "GAS")
    'yantai-gas'
"""

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from routing.records import Service
from routing.regions import PROVINCES, SHANDONG, is_known_region
from routing.services import shipped_services
from routing.spelling import did_you_mean, nearest_code
from routing.yaml_files import read_yaml

_PREFIX: Final = re.compile(r"[0-9]{2,6}")
_UTILITY_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]*")
_PREFECTURE_LENGTH: Final = 4
_COUNTY_LENGTH: Final = 6
# The codes of each level, by prefix length: a mistyped prefix is compared with its own level only.
_LEVELS: Final = {
    2: frozenset(code[:2] for code in PROVINCES),
    4: frozenset(code[:4] for code in SHANDONG if code.endswith("00") and not code.endswith("0000")),
    6: frozenset(code for code in SHANDONG if not code.endswith("00")),
}


@dataclass(frozen=True, slots=True)
class ServiceArea:
    """One row of the table: ``utility`` serves ``services`` wherever the region code has this prefix."""

    utility: str
    region_prefix: str
    services: tuple[Service, ...]


@dataclass(frozen=True)
class ServiceAreaTable:
    """The whole table, indexed by (prefix, service) so a lookup costs one probe per prefix length.

    Args:
        version: The table's version string, for logs and task provenance.
        areas: The rows; two rows claiming the same prefix and service are a configuration error.

    Raises:
        ValueError: On a duplicate (prefix, service), naming both rows.
    """

    version: str
    areas: tuple[ServiceArea, ...]
    _index: Mapping[tuple[str, Service], str] = field(init=False, repr=False, compare=False)
    _lengths: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, Service], str] = {}
        owner: dict[tuple[str, Service], int] = {}
        for position, area in enumerate(self.areas):
            for service in area.services:
                key = (area.region_prefix, service)
                if key in owner:
                    msg = (
                        f"areas[{position}]: prefix {area.region_prefix!r} {service} is already served by "
                        f"{index[key]!r} (areas[{owner[key]}])"
                    )
                    raise ValueError(msg)
                index[key] = area.utility
                owner[key] = position
        # The dataclass is frozen for callers; the derived index is set once, here.
        object.__setattr__(self, "_index", MappingProxyType(index))
        lengths = sorted({len(area.region_prefix) for area in self.areas}, reverse=True)
        object.__setattr__(self, "_lengths", tuple(lengths))

    def __reduce__(self) -> tuple[type["ServiceAreaTable"], tuple[str, tuple[ServiceArea, ...]]]:
        # The read-only index cannot be pickled; a worker process rebuilds it from the rows.
        return ServiceAreaTable, (self.version, self.areas)

    def utility_for(self, region_code: str, service: Service) -> str | None:
        """Return the utility serving ``service`` at ``region_code``, the longest matching prefix winning.

        Args:
            region_code: The site's 6-digit region code.
            service: The service wanted.

        Returns:
            The utility id, or ``None`` if no row covers the site for that service.
        """
        for length in self._lengths:
            if length <= len(region_code):
                utility = self._index.get((region_code[:length], service))
                if utility is not None:
                    return utility
        return None

    def coverage(self, region_code: str) -> list[tuple[str, Service]]:
        """Return, for each service available at ``region_code``, the utility that serves it.

        Args:
            region_code: The site's 6-digit region code.

        Returns:
            ``(utility, service)`` pairs in the order of ``services.yaml``; empty if none is served.
        """
        pairs: list[tuple[str, Service]] = []
        for service in shipped_services().codes:
            utility = self.utility_for(region_code, service)
            if utility is not None:
                pairs.append((utility, service))
        return pairs

    def utilities(self) -> frozenset[str]:
        """Return every utility id the table names."""
        return frozenset(area.utility for area in self.areas)


def load_service_areas(path: Path) -> ServiceAreaTable:
    """Read and validate a service-area YAML file.

    Args:
        path: The YAML file.

    Returns:
        The table.

    Raises:
        OSError: If the file cannot be read.
        ValueError: If it is not valid YAML or not a valid table; the message names the file and key.
    """
    doc = read_yaml(path)
    return parse_service_areas(doc, origin=str(path))


def parse_service_areas(doc: Mapping[str, Any] | Any, *, origin: str = "<memory>") -> ServiceAreaTable:
    """Validate a parsed service-area document (:class:`ServiceAreasFile`) and build the table.

    Args:
        doc: The document, as ``yaml.safe_load`` returns it.
        origin: Where it came from, for error messages.

    Returns:
        The table.

    Raises:
        ValueError: One line per fault, naming ``origin`` and the key path, e.g. ``service-areas.yaml:
            areas[3].region_prefix: '37A6' is not 2-6 digits``.
    """
    try:
        model = ServiceAreasFile.model_validate(doc)
    except ValidationError as exc:
        lines = [f"{origin}: {_key(item['loc'])}: {item['msg']}{_hint(item)}" for item in exc.errors(include_url=False)]
        raise ValueError("\n".join(lines)) from exc
    try:
        return ServiceAreaTable(
            version=model.version,
            areas=tuple(ServiceArea(row.utility, row.region_prefix, row.services) for row in model.areas),
        )
    except ValueError as exc:
        msg = f"{origin}: {exc}"
        raise ValueError(msg) from exc


def _invalid(kind: str, reason: str) -> PydanticCustomError:
    # The reason goes in as context so that braces in a quoted value are not read as a template.
    return PydanticCustomError(kind, "{reason}", {"reason": reason})


def _version(value: object) -> object:
    # An unquoted date is what a human most likely wrote; reading it back as ISO text loses nothing.
    return value.isoformat() if isinstance(value, datetime.date) else value


def _utility(value: str) -> str:
    if _UTILITY_ID.fullmatch(value) is None:
        reason = f"{value!r} is not a utility id (lowercase letters, digits and dashes, e.g. yantai-water)"
        raise _invalid("utility_id", reason)
    return value


def _prefix_text(value: object) -> object:
    # An unquoted prefix arrives as an int; no region code starts with 0, so nothing is lost.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _region_prefix(value: str) -> str:
    if _PREFIX.fullmatch(value) is None:
        raise _invalid("region_prefix", f"{value!r} is not 2-6 digits")
    if not _is_known_prefix(value):
        what = "unknown region code" if len(value) == _COUNTY_LENGTH else "unknown region prefix"
        match = nearest_code(value, _LEVELS.get(len(value), ()))
        raise _invalid("region_prefix", f"{what} {value!r}" + (f"; did you mean {match!r}?" if match else ""))
    return value


def _is_known_prefix(prefix: str) -> bool:
    if len(prefix) == _COUNTY_LENGTH:
        return is_known_region(prefix)
    if len(prefix) == _PREFECTURE_LENGTH:
        return is_known_region(f"{prefix}00")
    return f"{prefix[:2]}0000" in PROVINCES


def _service(value: object) -> object:
    codes = shipped_services().codes
    if value not in codes:
        hint = did_you_mean(value, codes) or f"; expected one of {list(codes)}"
        raise _invalid("service", f"unknown service {value!r}{hint}")
    return value


def _distinct(services: tuple[Service, ...]) -> tuple[Service, ...]:
    # Checked after the items, so that an unknown service is not also reported as an empty list.
    if not services:
        raise _invalid("services_empty", f"must list at least one of {list(shipped_services().codes)}")
    repeated = sorted({service for service in services if services.count(service) > 1})
    if repeated:
        raise _invalid("service_repeated", f"{', '.join(repeated)} listed twice")
    return services


def _hint(item: Any) -> str:
    if item["type"] != "extra_forbidden":
        return ""
    model = ServiceAreasFile if len(item["loc"]) == 1 else AreaRow
    return did_you_mean(item["loc"][-1], model.model_fields)


def _non_empty(value: str) -> str:
    if not value.strip():
        raise _invalid("version_empty", "must not be empty")
    return value.strip()


def _some_areas(areas: tuple["AreaRow", ...]) -> tuple["AreaRow", ...]:
    # Checked after the rows, so that a bad row is not also reported as an empty list.
    if not areas:
        raise _invalid("areas_empty", "must list at least one service area")
    return areas


def _key(loc: Sequence[int | str]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "<top>"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AreaRow(_Strict):
    """One row: ``utility`` serves ``services`` wherever the region code starts with ``region_prefix``."""

    utility: Annotated[str, AfterValidator(_utility)]
    region_prefix: Annotated[str, BeforeValidator(_prefix_text), AfterValidator(_region_prefix)]
    services: Annotated[tuple[Annotated[Service, BeforeValidator(_service)], ...], AfterValidator(_distinct)]


class ServiceAreasFile(_Strict):
    """``service-areas.yaml``: a version string (bump it on every change) and at least one row."""

    version: Annotated[str, BeforeValidator(_version), AfterValidator(_non_empty)]
    areas: Annotated[tuple[AreaRow, ...], AfterValidator(_some_areas)]
