import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

from routing.identifiers import USCC_ALPHABET
from routing.privacy import mask_id_number, mask_mobile, mask_name, mask_text
from routing.regions import SHANDONG


def make_id(first17: str) -> str:
    """Complete 17 digits with their GB 11643 check character."""
    return first17 + ric.calc_check_digit(first17 + "0")


ID_NUMBER = make_id("37060219900101123")

mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
id_numbers = st.builds(
    lambda region, date, serial: make_id(f"{region}{date:%Y%m%d}{serial:03d}"),
    st.sampled_from(sorted(SHANDONG)),
    st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2099, 12, 31)),
    st.integers(0, 999),
)
# A number is set off from arbitrary surrounding text by one character that is not an ASCII letter or digit.
surroundings = st.text(max_size=20)
separators = st.sampled_from([" ", ",", ":", "：", "，", "\n", "号", "(", '"', "="])


@pytest.mark.parametrize(("number", "masked"), [("13912345678", "139****5678"), ("1391234", "*******"), ("", "")])
def test_mask_mobile(number: str, masked: str) -> None:
    """Keeps the first 3 and last 4 characters; too-short input is masked whole."""
    assert masked == mask_mobile(number)


@pytest.mark.parametrize(("number", "masked"), [("37060219900101123X", "3706**********123X"), ("12345678", "********")])
def test_mask_id_number(number: str, masked: str) -> None:
    """Keeps the first 4 and last 4 characters; too-short input is masked whole."""
    assert masked == mask_id_number(number)


@pytest.mark.parametrize(("name", "masked"), [("张伟", "张*"), ("欧阳娜娜", "欧***"), ("张", "*"), ("", "")])
def test_mask_name(name: str, masked: str) -> None:
    """Keeps the first character only, and not even that for one-character names."""
    assert masked == mask_name(name)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("联系人手机13912345678。", "联系人手机139****5678。"),
        ("tel: +86 139-1234-5678", "tel: +86 139-****-5678"),
        ("8613912345678", "86139****5678"),
        ("139 1234 5678 and 15800001111", "139 **** 5678 and 158****1111"),
        (f"身份证{ID_NUMBER}，", f"身份证{mask_id_number(ID_NUMBER)}，"),
        (f"id={ID_NUMBER.lower()}", f"id={mask_id_number(ID_NUMBER.lower())}"),
        ("37060219901301123X", "37060219901301123X"),
        ("91330100716105852F", "91330100716105852F"),
        ("2026-370602-47-01-000123", "2026-370602-47-01-000123"),
        ("abc13912345678", "abc13912345678"),
        ("139123456789", "139123456789"),
        ("sha256:13912345678ab", "sha256:13912345678ab"),
        ("no numbers here", "no numbers here"),
    ],
)
def test_mask_text_examples(text: str, masked: str) -> None:
    """Numbers standing on their own are masked; USCCs, project codes and glued tokens are left alone."""
    assert masked == mask_text(text)


def test_a_usccs_lookalike_with_a_bad_id_check_character_is_left_alone() -> None:
    """An 18-digit USCC with a plausible date is spared when its USCC check character is right."""
    body = "11370602199001011"
    code = body + uscc.calc_check_digit(body)
    assert (False, code) == (ric.is_valid(code), mask_text(code))


def test_a_mistyped_id_number_is_still_masked() -> None:
    """A candidate failing both check characters is treated as a mistyped ID number."""
    body = "37060219900101123"
    wrong = next(c for c in "0123456789X" if c not in {ric.calc_check_digit(body + "0"), uscc.calc_check_digit(body)})
    assert mask_id_number(body + wrong) == mask_text(body + wrong)


@given(surroundings, separators, mobiles, separators, surroundings)
def test_embedded_mobile_numbers_never_survive(before: str, left: str, number: str, right: str, after: str) -> None:
    """A mobile number set off by a non-alphanumeric character never appears in the output."""
    assert number not in mask_text(before + left + number + right + after)


@given(surroundings, separators, id_numbers, separators, surroundings)
def test_embedded_id_numbers_never_survive(before: str, left: str, number: str, right: str, after: str) -> None:
    """A valid ID number set off by a non-alphanumeric character never appears in the output."""
    masked = mask_text(before + left + number + right + after)
    assert number not in masked
    assert mask_id_number(number) in masked


@given(st.text(st.sampled_from(USCC_ALPHABET), min_size=17, max_size=17))
def test_usccs_are_masked_only_if_they_are_also_id_numbers(body: str) -> None:
    """A valid USCC is left alone unless it is also a valid ID number."""
    code = body + uscc.calc_check_digit(body)
    assert code == mask_text(code) or ric.calc_check_digit(code) == code[17]


@given(st.text())
def test_mask_text_is_idempotent(text: str) -> None:
    """Masking masked text changes nothing, and length never changes."""
    once = mask_text(text)
    assert (len(text), once) == (len(once), mask_text(once))
