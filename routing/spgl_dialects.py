"""How each vendor's exchange database links an item instance to its project and its stage (DESIGN §4.1).

The national tables come in two shapes. The ``XMDM`` dialect writes the project code (``xmdm``) and the
standard stage (``dybzspjdxh``) on every item-instance row. Later versions of the data standard, and several
vendors, key the item by the engineering code (``gcdm``) instead and leave the stage to the local
approval-process tables: the item names its process (``splcbm``, version ``splcbbh``) and item code
(``spsxbm``); ``SPGL_DFXMSPLCJDSXXXB`` places that item in a local stage (``spjdxh``), and
``SPGL_DFXMSPLCJDXXB`` maps the local stage to the standard one (``dybzspjdxh``).

A dialect file (``deploy/config/spgl-dialects.yaml``) lists the dialects in the order they are tried on each
item row; the first whose ``when_present`` columns all hold a value is the item's dialect. ``rename`` maps a
vendor's column names to the standard's, table by table. Loading validates the file with pydantic, and
errors name the file and the key.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from routing.yaml_files import read_yaml

Column = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
DEFAULT_DIALECTS = Path(__file__).resolve().parent.parent / "deploy" / "config" / "spgl-dialects.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lookup(_Strict):
    """One step of a stage chain: find the latest row of ``table`` matching, take one of its columns."""

    table: TableName
    match: Annotated[dict[Column, Column], Field(min_length=1)] = Field(
        description="lookup table's column → name of the value found so far (the item's columns, earlier takes)"
    )
    take: Column


class StageSource(_Strict):
    """Where the standard stage comes from: a column of the item row, or a chain of lookups."""

    column: Column | None = None
    lookups: tuple[Lookup, ...] = ()


class Dialect(_Strict):
    """How an item row of this dialect reaches its project, its documents and its stage."""

    name: str
    description: str = ""
    when_present: Annotated[tuple[Column, ...], Field(min_length=1)]
    item_project_column: Column = Field(description="column of the item row naming its project")
    project_column: Column = Field(description="column of SPGL_XMJBXXB that value matches")
    document_column: Column = Field(description="column of the document tables naming their project")
    stage: StageSource


class Dialects(_Strict):
    """Every dialect a source accepts, tried in order, and the vendor's column renames."""

    dialects: Annotated[tuple[Dialect, ...], Field(min_length=1)]
    rename: dict[TableName, dict[str, Column]] = Field(default_factory=dict)

    def of(self, item: Mapping[str, Any]) -> Dialect | None:
        """The first dialect whose ``when_present`` columns all have a value in ``item``."""
        for dialect in self.dialects:
            for column in dialect.when_present:
                value = item.get(column)
                if value is None or value == "":
                    break
            else:
                return dialect
        return None

    def renames(self, table: str) -> dict[str, str]:
        """Vendor column (lower case) → standard column, for ``table``."""
        return {vendor.lower(): standard for vendor, standard in self.rename.get(table, {}).items()}


def load_dialects(path: Path = DEFAULT_DIALECTS) -> Dialects:
    """Read and validate a dialect file.

    Raises:
        ValueError: The file is unreadable or invalid; the message names the file and the bad key.
    """
    try:
        document = read_yaml(path)
    except OSError as exc:
        message = f"{path}: {exc}"
        raise ValueError(message) from exc
    try:
        return Dialects.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = f"{path}: {key}: {first['msg']}"
        raise ValueError(message) from None
