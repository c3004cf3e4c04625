import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

from routing.errors import DataError
from routing.identifiers import (
    USCC_ALPHABET,
    check_uscc,
    validate_id_number,
    validate_mobile,
    validate_project_code,
    validate_region_code,
)
from routing.regions import SHANDONG

ORG_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def make_uscc(head: str, org_body: str) -> str:
    """Build a valid USCC from 8 leading characters and an 8-character organisation-code body."""
    org_check = "0123456789X"[
        (11 - sum(ORG_VALUES[c] * w for c, w in zip(org_body, ORG_WEIGHTS, strict=True)) % 11) % 11
    ]
    body = head + org_body + org_check
    return body + uscc.calc_check_digit(body)


def make_id(first17: str) -> str:
    """Complete 17 digits with their GB 11643 check character."""
    return first17 + ric.calc_check_digit(first17 + "0")


uscc_chars = st.sampled_from(USCC_ALPHABET)
valid_usccs = st.builds(
    make_uscc, st.text(uscc_chars, min_size=8, max_size=8), st.text(uscc_chars, min_size=8, max_size=8)
)
project_codes = st.builds(
    "{}-{}-{}-{}-{}".format,
    st.from_regex(r"[0-9]{4}", fullmatch=True),
    st.sampled_from(sorted(SHANDONG)),
    st.from_regex(r"[0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{6}", fullmatch=True),
)


# --- project codes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["2026-370602-47-01-000123", "2611-370685-48-03-123456", "2019-110105-70-01-000001"])
def test_valid_project_codes_pass(code: str) -> None:
    """Old (year) and new (YYMM) first blocks with known regions pass."""
    assert validate_project_code(code) is None


@pytest.mark.parametrize(
    "code",
    [
        "2026-37-1",
        "2026-370602-47-01-00012",
        "2026370602470100012 3",
        "2026-370602-47-01-000123 ",
        "2026_370602_47_01_000123",
        "２０２６-370602-47-01-000123",
        "",
    ],
)
def test_malformed_project_codes_fail(code: str) -> None:
    """Anything but NNNN-NNNNNN-NN-NN-NNNNNN in ASCII digits fails with the expected shape named."""
    with pytest.raises(DataError) as caught:
        validate_project_code(code)
    assert ("project_code", f"project code {code!r} does not match NNNN-NNNNNN-NN-NN-NNNNNN") == (
        caught.value.field,
        caught.value.reason,
    )


def test_project_code_with_unknown_region_fails() -> None:
    """The region block must be a known region."""
    with pytest.raises(DataError) as caught:
        validate_project_code("2026-370699-47-01-000123", "xmdm")
    assert ("xmdm", "project code '2026-370699-47-01-000123' names unknown region 370699") == (
        caught.value.field,
        caught.value.reason,
    )


@given(project_codes)
def test_generated_project_codes_pass(code: str) -> None:
    """Every well-formed code with a tabulated Shandong region passes."""
    assert validate_project_code(code) is None


@given(st.text())
def test_project_code_validation_only_raises_data_error(code: str) -> None:
    """Arbitrary text either passes as a well-formed code or raises DataError naming the field."""
    try:
        validate_project_code(code)
    except DataError as exc:
        assert "project_code" == exc.field
    else:
        assert re.fullmatch(r"[0-9]{4}-[0-9]{6}-[0-9]{2}-[0-9]{2}-[0-9]{6}", code)


# --- USCC ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["91110000600037341L", "91330100716105852F", "9144030071526726XG"])
def test_real_usccs_pass(code: str) -> None:
    """Published codes of real companies pass without flags."""
    assert [] == check_uscc(code)


def test_uscc_with_letters_in_the_first_eight_characters_passes() -> None:
    """Letters in the authority, type and region characters are allowed, unlike in stdnum."""
    code = make_uscc("Y1A70602", "MA3C0X1P")
    assert (not uscc.is_valid(code), []) == (True, check_uscc(code))


def test_wrong_check_character_alone_is_a_soft_flag() -> None:
    """Only the 18th character wrong: a flag named after the field, not an error."""
    assert ["builder_uscc:check_character_mismatch"] == check_uscc("91330100716105852A")
    assert ["applicant_uscc:check_character_mismatch"] == check_uscc("91330100716105852A", "applicant_uscc")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("9133010071610585", "USCC '9133010071610585' has 16 characters, expected 18"),
        ("91330100716105852FF", "USCC '91330100716105852FF' has 19 characters, expected 18"),
        (
            "91330100716I05852F",
            "USCC '91330100716I05852F' has 'I' at position 12, outside the GB 32100 alphabet",
        ),
        (
            "91330100716105852f",
            "USCC '91330100716105852f' has 'f' at position 18, outside the GB 32100 alphabet",
        ),
        (
            "91330100716105853F",
            "USCC '91330100716105853F' has an invalid organisation code '716105853' (GB 11714)",
        ),
    ],
)
def test_hard_uscc_faults_raise(code: str, reason: str) -> None:
    """Length, alphabet and organisation-code faults raise with a precise reason."""
    with pytest.raises(DataError) as caught:
        check_uscc(code)
    assert ("builder_uscc", reason) == (caught.value.field, caught.value.reason)


@given(valid_usccs)
def test_generated_usccs_pass(code: str) -> None:
    """Any code with valid organisation and check characters passes."""
    assert [] == check_uscc(code)


@given(valid_usccs, uscc_chars)
def test_any_other_check_character_is_flagged(code: str, check: str) -> None:
    """Replacing the check character with any other character yields exactly the soft flag."""
    expected = [] if check == code[17] else ["builder_uscc:check_character_mismatch"]
    assert expected == check_uscc(code[:17] + check)


@given(st.text(max_size=20))
def test_uscc_check_only_raises_data_error(code: str) -> None:
    """Arbitrary text yields flags or a DataError, nothing else."""
    try:
        flags = check_uscc(code)
    except DataError as exc:
        assert "builder_uscc" == exc.field
    else:
        assert flags in ([], ["builder_uscc:check_character_mismatch"])


# --- mobile numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["13912345678", "139 1234 5678", "139-1234-5678", "+8613912345678", "+86 139 1234 5678", "8613912345678"],
)
def test_mobile_numbers_are_normalised(number: str) -> None:
    """Prefixes and separators are removed, leaving 11 digits."""
    assert "13912345678" == validate_mobile(number)


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("1391234567", "mobile number has 10 characters after removing prefix and separators, expected 11"),
        ("139123456789", "mobile number has 12 characters after removing prefix and separators, expected 11"),
        ("0531-8888888", "mobile number starts with 05, expected 13-19"),
        ("12912345678", "mobile number starts with 12, expected 13-19"),
        (
            "1391234567a",
            "mobile number contains characters other than digits, spaces, dashes and a +86 prefix",
        ),
        (
            "１３９１２３４５６７８",
            "mobile number contains characters other than digits, spaces, dashes and a +86 prefix",
        ),
    ],
)
def test_invalid_mobile_numbers_fail(number: str, reason: str) -> None:
    """Each fault has its own reason, and no reason repeats the number."""
    with pytest.raises(DataError) as caught:
        validate_mobile(number)
    assert ("contact_mobile", reason) == (caught.value.field, caught.value.reason)


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_every_mainland_mobile_number_passes(number: str) -> None:
    """Every 11-digit number starting 13-19 is returned unchanged."""
    assert number == validate_mobile(number)


# --- ID numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "normalised"),
    [
        ("360426199101010071", "360426199101010071"),
        (make_id("37060219900101123"), make_id("37060219900101123")),
        (make_id("11010519491231002").lower(), make_id("11010519491231002")),
        ("3604 2619 9101 0100 71", "360426199101010071"),
        (make_id("81000019900101123"), make_id("81000019900101123")),
        (make_id("82000019900101123"), make_id("82000019900101123")),
        (make_id("83000019900101123"), make_id("83000019900101123")),
    ],
)
def test_valid_id_numbers_pass(number: str, normalised: str) -> None:
    """Resident ID numbers and HK/Macao/Taiwan residence permits pass, normalised."""
    assert normalised == validate_id_number(number)


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("36042619910101007", "ID number must be 17 digits and a digit or X (17 characters given)"),
        ("36042619910101007Y", "ID number must be 17 digits and a digit or X (18 characters given)"),
        ("360426199101010072", "ID number check character does not match"),
        (make_id("37060219901301123"), "ID number holds no valid birth date"),
        (make_id("99000019900101123"), "ID number names unknown birth place 990000"),
        (make_id("84000019900101123"), "ID number names unknown birth place 840000"),
    ],
)
def test_invalid_id_numbers_fail(number: str, reason: str) -> None:
    """Each fault has its own reason, and no reason repeats the number."""
    with pytest.raises(DataError) as caught:
        validate_id_number(number)
    assert ("applicant_id_number", reason) == (caught.value.field, caught.value.reason)


@given(st.text(max_size=24))
def test_id_number_validation_only_raises_data_error(number: str) -> None:
    """Arbitrary text passes as an 18-character number or raises DataError, nothing else."""
    try:
        assert 18 == len(validate_id_number(number))
    except DataError as exc:
        assert "applicant_id_number" == exc.field


# --- region codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["370602", "371503", "110101"])
def test_known_region_codes_pass(code: str) -> None:
    """Tabulated Shandong codes and codes under other known provinces pass."""
    assert validate_region_code(code) is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("37060", "region code '37060' is not 6 digits"),
        ("37060X", "region code '37060X' is not 6 digits"),
        ("370699", "region code 370699 is not a known GB/T 2260 region"),
        ("990000", "region code 990000 is not a known GB/T 2260 region"),
    ],
)
def test_unknown_region_codes_fail(code: str, reason: str) -> None:
    """Malformed and unknown codes fail with distinct reasons."""
    with pytest.raises(DataError) as caught:
        validate_region_code(code, "jsddxzqh")
    assert ("jsddxzqh", reason) == (caught.value.field, caught.value.reason)
