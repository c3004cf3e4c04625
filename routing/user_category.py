"""The user's category for the utilities' ledger: 企业用户, 个体工商户, 居民用户, 公服用户 (002).

Liaocheng (002) asks every utility to keep its users "分门别类（企业用户、个体工商户、居民用户、公服用户等）形成台账".
An application or a project event may state the category in words (``category_of_words``); otherwise it is
read from who the user is: a natural person is a resident, an organisation is classed by the first two
characters of its 统一社会信用代码 (GB 32100: the registration authority and the organisation type). Both
readings are policy data (``deploy/config/user-categories.yaml``). A stated category that contradicts the
identifier (a person as 企业用户, a 个体工商户 credit code as 公服用户) is refused: one of the two is wrong, and
the ledger must not count the user twice over.

Example:
    >>> table = load_category_table(Path("deploy/config/user-categories.yaml"))
    >>> user_category(table, stated=None, uscc="92370602MA3C0XXXX0", is_person=False)
    'INDIVIDUAL_BUSINESS'
"""

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.errors import DataError
from routing.records import ApplicantType, UserCategory
from routing.yaml_files import read_model

CATEGORIES: tuple[UserCategory, ...] = ("ENTERPRISE", "INDIVIDUAL_BUSINESS", "RESIDENT", "PUBLIC_SERVICE")
Text = Annotated[str, Field(min_length=1)]
_USCC_TYPE = Annotated[str, Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{2}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The seed sentence the categories come from."""

    document: Text
    quote: Text


class Category(_Strict):
    """A category's Chinese name and the words a form may use for it."""

    name: Text
    words: Annotated[list[Text], Field(min_length=1)]


class CategoryTable(_Strict):
    """The categories, the words for them, and how to read one from an identifier."""

    source: Source
    categories: Mapping[UserCategory, Category]
    by_uscc: Mapping[_USCC_TYPE, UserCategory]
    person: UserCategory
    may_be_stated_as: Mapping[UserCategory, frozenset[UserCategory]]
    reading: Text

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = [c for c in CATEGORIES if c not in self.categories]
        if missing:
            message = f"categories: {', '.join(missing)} missing (002 names all four)"
            raise ValueError(message)
        unbound = [c for c in CATEGORIES if c not in self.may_be_stated_as.get(c, frozenset())]
        if unbound:
            message = f"may_be_stated_as: {', '.join(unbound)} must list at least itself"
            raise ValueError(message)
        seen: dict[str, str] = {}
        for category, entry in self.categories.items():
            for word in (entry.name, *entry.words):
                if seen.setdefault(word, category) != category:
                    message = f"categories.{category}.words: {word!r} also means {seen[word]}"
                    raise ValueError(message)
        return self

    def of_words(self, words: str, field: str) -> UserCategory:
        """The category a form's words name (its code or any of its words).

        Raises:
            DataError: The words name no category.
        """
        text = words.strip()
        for category, entry in self.categories.items():
            if text in (category, entry.name, *entry.words):
                return category
        names = "、".join(entry.name for entry in self.categories.values())
        raise DataError(field, f"{text[:20]!r} is not a user category ({names})")


def load_category_table(path: Path) -> CategoryTable:
    """The category file, validated.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid; the message names the file and the bad key.
    """
    return read_model(path, CategoryTable)


SHIPPED: Final = Path(__file__).resolve().parents[1] / "deploy" / "config" / "user-categories.yaml"
# what an 爱山东 applicant type says of the user, when neither the form nor the identifier says more
_OF_APPLICANT: Final[dict[ApplicantType, UserCategory]] = {
    "PERSON": "RESIDENT",
    "ENTERPRISE": "ENTERPRISE",
    "SOLE_PROPRIETOR": "INDIVIDUAL_BUSINESS",
    "PUBLIC_SERVICE": "PUBLIC_SERVICE",
}


@cache
def shipped_categories() -> CategoryTable:
    """The shipped ``deploy/config/user-categories.yaml``, read once."""
    return load_category_table(SHIPPED)


def of_applicant(applicant_type: ApplicantType) -> UserCategory:
    """The category an applicant type names (个人 → 居民用户, 个体 → 个体工商户, …)."""
    return _OF_APPLICANT[applicant_type]


def user_category(
    table: CategoryTable,
    *,
    stated: str | None,
    uscc: str | None,
    is_person: bool,
    field: str = "user_category",
) -> UserCategory | None:
    """The user's category: the stated one if it fits the identifier, else the one the identifier gives.

    Returns None only when nothing is stated and the identifier says nothing (an organisation without a
    credit code, or one of a type the table does not class).

    Raises:
        DataError: The stated words name no category, or contradict the identifier.
    """
    derived: UserCategory | None = table.person if is_person else None
    if not is_person and uscc:
        derived = table.by_uscc.get(uscc[:2].upper())
    if stated is None or not stated.strip():
        return derived
    category = table.of_words(stated, field)
    if derived is not None and category not in table.may_be_stated_as[derived]:
        name, by = table.categories[category].name, table.categories[derived].name
        who = "a natural person" if is_person else f"a credit code of type {(uscc or '')[:2]}"
        raise DataError(field, f"{name} does not fit {who} ({by})")
    return category
