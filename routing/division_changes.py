"""Administrative-division codes withdrawn since 2015, and their successors (``data/division_changes.yaml``).

A project code keeps the region block it was issued with, and exchange databases keep rows written before a
change: the old 莱芜 block 371202 is 济南市莱芜区 370116 since 国函〔2019〕6号. :func:`successor` reads such a
code as the place it is now, following chains of changes, so old codes still route. The table is data with
its source, one row per change, so a new change is a new row.

Example:
    >>> successor("371202")
    '370116'
    >>> successor("370602") is None
    True
"""

from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Final

import yaml
from pydantic import BaseModel, ConfigDict, Field

TABLE: Final = Path(__file__).with_name("data") / "division_changes.yaml"
_CODE: Final = r"^[0-9]{6}$"


class DivisionChange(BaseModel):
    """One withdrawn code and the code that took its place."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    old: str = Field(pattern=_CODE)
    old_name: str
    new: str = Field(pattern=_CODE)
    new_name: str
    year: int = Field(ge=2015)
    basis: str = Field(min_length=1)


class DivisionChanges(BaseModel):
    """The whole table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    changes: list[DivisionChange]


@cache
def changes() -> MappingProxyType[str, DivisionChange]:
    """Each withdrawn code's change, loaded and validated once."""
    table = DivisionChanges.model_validate(yaml.safe_load(TABLE.read_text(encoding="utf-8")))
    return MappingProxyType({change.old: change for change in table.changes})


def successor(code: str) -> str | None:
    """The code a withdrawn region ``code`` is now, or None when ``code`` was not withdrawn."""
    table = changes()
    if code not in table:
        return None
    seen = {code}
    while code in table:
        code = table[code].new
        if code in seen:  # a cycle is a broken table, not a place
            message = f"{TABLE}: the changes of {code} form a cycle"
            raise ValueError(message)
        seen.add(code)
    return code
