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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NoReturn

from routing.records import SERVICES, Service
from routing.regions import PROVINCES, is_known_region
from routing.yaml_files import read_yaml

_PREFIX: Final = re.compile(r"[0-9]{2,6}")
_UTILITY_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]*")
_AREA_KEYS: Final = frozenset({"utility", "region_prefix", "services"})
_PREFECTURE_LENGTH: Final = 4
_COUNTY_LENGTH: Final = 6


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
            ``(utility, service)`` pairs in :data:`routing.records.SERVICES` order; empty if none is served.
        """
        pairs: list[tuple[str, Service]] = []
        for service in SERVICES:
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


def parse_service_areas(doc: Mapping[str, Any], *, origin: str = "<memory>") -> ServiceAreaTable:
    """Validate a parsed service-area document and build the table.

    Args:
        doc: The document, as ``yaml.safe_load`` returns it.
        origin: Where it came from, for error messages.

    Returns:
        The table.

    Raises:
        ValueError: Naming ``origin`` and the key path, e.g. ``service-areas.yaml: areas[3].region_prefix:
            '37A6' is not 2-6 digits``.
    """
    try:
        if not isinstance(doc, Mapping):
            _fail("", f"expected a mapping with 'version' and 'areas', got {type(doc).__name__}")
        areas = doc.get("areas")
        if not isinstance(areas, list) or not areas:
            _fail("areas", "must be a non-empty list of service areas")
        return ServiceAreaTable(
            version=_version(doc.get("version")),
            areas=tuple(_area(f"areas[{i}]", row) for i, row in enumerate(areas)),
        )
    except ValueError as exc:
        msg = f"{origin}: {exc}"
        raise ValueError(msg) from exc


def _version(value: object) -> str:
    # An unquoted date is what a human most likely wrote; reading it back as ISO text loses nothing.
    if isinstance(value, datetime.date):
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        _fail("version", f"must be a non-empty string, got {value!r}")
    return value.strip()


def _area(path: str, row: object) -> ServiceArea:
    if not isinstance(row, Mapping):
        _fail(path, f"must be a mapping with {sorted(_AREA_KEYS)}, got {type(row).__name__}")
    unknown = sorted(str(key) for key in row.keys() - _AREA_KEYS)
    if unknown:
        _fail(path, f"unknown keys {unknown}; expected {sorted(_AREA_KEYS)}")
    return ServiceArea(
        utility=_utility(f"{path}.utility", row.get("utility")),
        region_prefix=_region_prefix(f"{path}.region_prefix", row.get("region_prefix")),
        services=_services(f"{path}.services", row.get("services")),
    )


def _utility(path: str, value: object) -> str:
    if not isinstance(value, str) or _UTILITY_ID.fullmatch(value) is None:
        _fail(path, f"{value!r} is not a utility id (lowercase letters, digits and dashes, e.g. yantai-water)")
    return value


def _region_prefix(path: str, value: object) -> str:
    # An unquoted prefix arrives as an int; no region code starts with 0, so nothing is lost.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or _PREFIX.fullmatch(value) is None:
        _fail(path, f"{value!r} is not 2-6 digits")
    if not _is_known_prefix(value):
        _fail(path, f"{value!r} is not the prefix of a known region")
    return value


def _is_known_prefix(prefix: str) -> bool:
    if len(prefix) == _COUNTY_LENGTH:
        return is_known_region(prefix)
    if len(prefix) == _PREFECTURE_LENGTH:
        return is_known_region(f"{prefix}00")
    return f"{prefix[:2]}0000" in PROVINCES


def _services(path: str, value: object) -> tuple[Service, ...]:
    if not isinstance(value, list) or not value:
        _fail(path, f"must be a non-empty list drawn from {list(SERVICES)}, got {value!r}")
    services: list[Service] = []
    for i, item in enumerate(value):
        service = next((s for s in SERVICES if s == item), None)
        if service is None:
            _fail(f"{path}[{i}]", f"{item!r} is not one of {list(SERVICES)}")
        if service in services:
            _fail(f"{path}[{i}]", f"{service} is listed twice")
        services.append(service)
    return tuple(services)


def _fail(path: str, reason: str) -> NoReturn:
    msg = f"{path}: {reason}" if path else reason
    raise ValueError(msg)
