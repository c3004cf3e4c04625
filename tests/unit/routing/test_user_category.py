"""The user's category (issue 18 item 4): 002's four categories, stated or read from the user's identifier."""

from pathlib import Path

import pytest

from routing.errors import DataError
from routing.user_category import CATEGORIES, CategoryTable, load_category_table, user_category

SHIPPED = Path(__file__).resolve().parents[3] / "deploy" / "config" / "user-categories.yaml"


@pytest.fixture(scope="module")
def table() -> CategoryTable:
    return load_category_table(SHIPPED)


def test_the_shipped_table_names_002s_four_categories_in_chinese(table: CategoryTable) -> None:
    """企业用户, 个体工商户, 居民用户, 公服用户, each with 002's sentence as the source."""
    names = [table.categories[c].name for c in CATEGORIES]
    assert (names, "公服用户" in table.source.quote) == (["企业用户", "个体工商户", "居民用户", "公服用户"], True)


@pytest.mark.parametrize(
    ("uscc", "expected"),
    [
        ("91370602MA3C0PXL7Q", "ENTERPRISE"),
        ("92370602MA3C0PXL7Q", "INDIVIDUAL_BUSINESS"),
        ("93370602MA3C0PXL7Q", "ENTERPRISE"),
        ("11370600004186513A", "PUBLIC_SERVICE"),
        ("12370600MB28361230", "PUBLIC_SERVICE"),
        ("52370600MJD6100001", "PUBLIC_SERVICE"),
        ("Y1370600MJD6100001", None),
    ],
)
def test_an_organisation_is_classed_by_its_credit_codes_type(
    table: CategoryTable, uscc: str, expected: str | None
) -> None:
    """GB 32100's first two characters: 91 enterprise, 92 individual business, 1x/5x public service; others none."""
    assert user_category(table, stated=None, uscc=uscc, is_person=False) == expected


def test_a_natural_person_is_a_resident(table: CategoryTable) -> None:
    """An applicant with an ID number and no credit code is 居民用户."""
    assert user_category(table, stated=None, uscc=None, is_person=True) == "RESIDENT"


@pytest.mark.parametrize(
    ("stated", "expected"),
    [
        ("企业用户", "ENTERPRISE"),
        ("公服", "PUBLIC_SERVICE"),
        ("PUBLIC_SERVICE", "PUBLIC_SERVICE"),
        (" 单位 ", "ENTERPRISE"),
    ],
)
def test_a_stated_category_is_read_from_its_code_name_or_words(
    table: CategoryTable, stated: str, expected: str
) -> None:
    """The form may say the code, the Chinese name or a common word; surrounding blanks do not matter."""
    assert user_category(table, stated=stated, uscc="91370602MA3C0PXL7Q", is_person=False) == expected


def test_a_stated_category_that_fits_the_identifier_wins(table: CategoryTable) -> None:
    """A company stated as 公服用户 (it runs a school) and a person stated as 个体工商户 are both taken as stated."""
    company = user_category(table, stated="公服用户", uscc="91370602MA3C0PXL7Q", is_person=False)
    trader = user_category(table, stated="个体工商户", uscc=None, is_person=True)
    assert (company, trader) == ("PUBLIC_SERVICE", "INDIVIDUAL_BUSINESS")


@pytest.mark.parametrize(
    ("stated", "uscc", "is_person", "reason"),
    [
        ("企业用户", None, True, "企业用户 does not fit a natural person (居民用户)"),
        ("公服用户", "92370602MA3C0PXL7Q", False, "公服用户 does not fit a credit code of type 92 (个体工商户)"),
        ("居民", "91370602MA3C0PXL7Q", False, "居民用户 does not fit a credit code of type 91 (企业用户)"),
    ],
)
def test_a_stated_category_that_contradicts_the_identifier_is_refused(
    table: CategoryTable, stated: str, uscc: str | None, is_person: bool, reason: str
) -> None:
    """The ledger must not count a user in a category its own identifier rules out: the error names both."""
    with pytest.raises(DataError) as caught:
        user_category(table, stated=stated, uscc=uscc, is_person=is_person)
    assert (caught.value.field, caught.value.reason) == ("user_category", reason)


def test_words_that_name_no_category_are_refused_listing_the_four(table: CategoryTable) -> None:
    """An unknown word is a DataError on the field, listing the categories it could have been."""
    with pytest.raises(DataError, match="'农业用户' is not a user category"):
        user_category(table, stated="农业用户", uscc=None, is_person=True, field="yhlb")


def test_an_organisation_without_a_credit_code_and_no_word_has_no_category(table: CategoryTable) -> None:
    """Nothing stated and nothing to read it from: None, for the caller to decide (never a guess)."""
    assert user_category(table, stated="  ", uscc=None, is_person=False) is None


def test_a_word_given_to_two_categories_is_refused(tmp_path: Path) -> None:
    """One word meaning two categories would make the reading depend on the order of the file."""
    bad = tmp_path / "categories.yaml"
    text = SHIPPED.read_text(encoding="utf-8").replace("words: [个体, 个体户, 个体工商户]", "words: [个体, 企业]")
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"categories.yaml: <top>: Value error, categories.INDIVIDUAL_BUSINESS.words"):
        load_category_table(bad)


def test_a_category_missing_from_may_be_stated_as_is_refused(tmp_path: Path) -> None:
    """Every category must at least allow itself, or a user stating the derived category would be refused."""
    bad = tmp_path / "categories.yaml"
    text = SHIPPED.read_text(encoding="utf-8").replace("  INDIVIDUAL_BUSINESS: [INDIVIDUAL_BUSINESS]\n", "")
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="may_be_stated_as: INDIVIDUAL_BUSINESS must list at least itself"):
        load_category_table(bad)
