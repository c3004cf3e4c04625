"""Validation of the identifiers upstream records carry (DESIGN §4.3).

Each validator raises :class:`~routing.errors.DataError` with a reason precise enough for an operator to fix
the source. Reasons never repeat a phone or ID number: they end up in logs and dead-letter headers.

Example:
    >>> validate_mobile("+86 139-1234-5678")
    '13912345678'
    >>> check_uscc("91110000600037341L")
    []
"""

import functools
import re
import unicodedata
from typing import Final

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from routing.division_changes import successor
from routing.errors import DataError
from routing.regions import is_known_region

_PROJECT_CODE: Final = re.compile(r"[0-9]{4}-[0-9]{6}-[0-9]{2}-[0-9]{2}-[0-9]{6}")
_REGION_CODE: Final = re.compile(r"[0-9]{6}")
_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
_MOBILE_SEPARATORS: Final = str.maketrans("", "", " -")
_MOBILE_LENGTH: Final = 11
# 区号 then 7-8 digit subscriber number, then an optional extension; 010 and 02x are the 3-digit area codes.
_LANDLINE: Final = re.compile(
    r"\(?(0(?:10|2[0-9]|[3-9][0-9]{2}))\)?-?([2-9][0-9]{6,7})(?:(?:-|转|ext\.?|#)([0-9]{1,6}))?", re.IGNORECASE
)
_LANDLINE_NATIONAL: Final = re.compile(r"(?:\+?86-?)(?=[1-9])")
_ID_BODY: Final = re.compile(r"[0-9]{17}[0-9X]")

# GB 32100 leaves out I, O, S, V and Z so that they cannot be misread as 1, 0, 5, U and 2.
USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_CHARS: Final = frozenset(USCC_ALPHABET)
_USCC_LENGTH: Final = 18
# GB 11714 organisation codes value letters by their place in the full Latin alphabet (A=10 ... Z=35).
_ORG_VALUES: Final = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CHECK_CHARS: Final = "0123456789X"
# Residence permits for people from Hong Kong, Macao and Taiwan use these prefixes, which GB/T 2260 (and so
# stdnum's birth-place table) does not list.
_PERMIT_PREFIXES: Final = frozenset({"81", "82", "83"})
_SHOWN_CHARS: Final = 40


def validate_project_code(code: str, field: str = "project_code") -> None:
    """Check a 项目代码: ``NNNN-NNNNNN-NN-NN-NNNNNN`` with a known region in the second block.

    Args:
        code: The project code as received.
        field: Field name reported in the error.

    Raises:
        DataError: If the shape is wrong or the region block is unknown (a block withdrawn since 2015 is known:
            the code was valid when issued, :mod:`routing.division_changes`).
    """
    if _PROJECT_CODE.fullmatch(code) is None:
        raise DataError(field, f"project code {_shown(code)} does not match NNNN-NNNNNN-NN-NN-NNNNNN")
    region = code[5:11]
    if not is_known_region(region) and successor(region) is None:
        raise DataError(field, f"project code {_shown(code)} names unknown region {region}")


def validate_region_code(code: str, field: str = "region_code") -> None:
    """Check a 6-digit GB/T 2260 region code against :func:`routing.regions.is_known_region`.

    Args:
        code: The region code as received.
        field: Field name reported in the error.

    Raises:
        DataError: If the code is not 6 digits or not a known region.
    """
    if _REGION_CODE.fullmatch(code) is None:
        raise DataError(field, f"region code {_shown(code)} is not 6 digits")
    if not is_known_region(code):
        raise DataError(field, f"region code {code} is not a known GB/T 2260 region")


def check_uscc(code: str, field: str = "builder_uscc") -> list[str]:
    """Check a 统一社会信用代码 (GB 32100), tolerating a wrong check character.

    Characters 1-8 (registration authority, entity type, region) only need to be in the alphabet: real codes
    carry letters there, which ``stdnum.cn.uscc`` wrongly rejects. A wrong 18th character alone is reported
    as a soft flag because the rest still identifies the builder; an organisation-code part (characters
    9-17) that fails its own GB 11714 check means the code names nobody.

    Args:
        code: The USCC as received.
        field: Field name reported in errors and used as the flag prefix.

    Returns:
        ``[]`` if valid, ``["<field>:check_character_mismatch"]`` if only the check character is wrong.

    Raises:
        DataError: For a wrong length, a character outside the alphabet or an invalid organisation code.
    """
    if len(code) != _USCC_LENGTH:
        raise DataError(field, f"USCC {_shown(code)} has {len(code)} characters, expected 18")
    for position, char in enumerate(code, start=1):
        if char not in _USCC_CHARS:
            reason = f"USCC {_shown(code)} has {char!r} at position {position}, outside the GB 32100 alphabet"
            raise DataError(field, reason)
    organisation = code[8:17]
    if _organisation_check(organisation[:8]) != organisation[8]:
        raise DataError(field, f"USCC {_shown(code)} has an invalid organisation code {organisation!r} (GB 11714)")
    if _uscc_check_character(code[:17]) != code[17]:
        return [f"{field}:check_character_mismatch"]
    return []


@functools.lru_cache(maxsize=65536)
def _uscc_check_character(first17: str) -> str:
    """Stdnum's GB 32100 check character, cached: a builder's code recurs on every event of its projects."""
    return str(uscc.calc_check_digit(first17))


def _organisation_check(body: str) -> str:
    total = sum(_ORG_VALUES[c] * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    return _ORG_CHECK_CHARS[(11 - total % 11) % 11]


def _shown(code: str) -> str:
    # Reasons travel in log lines and dead-letter headers, so a megabyte of garbage is cut short.
    return repr(code) if len(code) <= _SHOWN_CHARS else f"{code[:_SHOWN_CHARS]!r}…"


def validate_mobile(number: str, field: str = "contact_mobile") -> str:
    """Check a mainland mobile number and return its 11 bare digits.

    Args:
        number: The number as received; spaces, dashes and a ``+86`` or ``86`` prefix are accepted.
        field: Field name reported in the error.

    Returns:
        The 11-digit number, e.g. ``"13912345678"``.

    Raises:
        DataError: If what remains is not ``1[3-9]`` followed by 9 digits.
    """
    digits = number.translate(_MOBILE_SEPARATORS)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == _MOBILE_LENGTH + 2:
        digits = digits[2:]
    if _MOBILE.fullmatch(digits) is None:
        raise DataError(field, _mobile_fault(digits))
    return digits


def validate_contact_number(number: str, field: str = "contact_mobile") -> tuple[str, bool]:
    """Check a number a person can be reached on: a mainland mobile or a landline with its area code.

    Args:
        number: As received: spaces, dashes, full-width digits, ``+86``, ``(0535)`` and an extension
            (``-123``, ``转123``) are accepted.
        field: Field name reported in the error.

    Returns:
        ``(number, is_landline)``: the 11 digits of a mobile, or a landline as ``0535-6123456[-123]``.

    Raises:
        DataError: Neither a mobile nor a landline with its area code.
    """
    text = unicodedata.normalize("NFKC", number).strip()
    try:
        return validate_mobile(text, field), False
    except DataError as mobile_error:
        compact = text.replace(" ", "")
        if compact.startswith(("+86", "86")):
            compact = _LANDLINE_NATIONAL.sub("0", compact, count=1)
        landline = _LANDLINE.fullmatch(compact)
        if landline is None:
            reason = f"{mobile_error.reason}; nor is it a landline with its area code like 0535-6123456"
            raise DataError(field, reason) from None
        area, subscriber, extension = landline.groups()
        return f"{area}-{subscriber}" + (f"-{extension}" if extension else ""), True


def _mobile_fault(digits: str) -> str:
    if len(digits) != _MOBILE_LENGTH:
        return f"mobile number has {len(digits)} characters after removing prefix and separators, expected 11"
    if not (digits.isascii() and digits.isdigit()):
        return "mobile number contains characters other than digits, spaces, dashes and a +86 prefix"
    return f"mobile number starts with {digits[:2]}, expected 13-19"


def validate_id_number(number: str, field: str = "applicant_id_number") -> str:
    """Check a 居民身份证号码 (GB 11643) or a Hong Kong/Macao/Taiwan residence-permit number.

    Args:
        number: The number as received; spaces are ignored and a lowercase ``x`` is accepted.
        field: Field name reported in the error.

    Returns:
        The normalised 18-character number.

    Raises:
        DataError: For a wrong length or format, check character, birth date or birth place.
    """
    compact = number.replace(" ", "").upper()
    if _ID_BODY.fullmatch(compact) is None:
        raise DataError(field, f"ID number must be 17 digits and a digit or X ({len(compact)} characters given)")
    if ric.calc_check_digit(compact) != compact[17]:
        raise DataError(field, "ID number check character does not match")
    try:
        ric.get_birth_date(compact)
    except stdnum_errors.ValidationError as exc:
        raise DataError(field, "ID number holds no valid birth date") from exc
    if compact[:2] not in _PERMIT_PREFIXES:
        try:
            ric.get_birth_place(compact)
        except stdnum_errors.ValidationError as exc:
            raise DataError(field, f"ID number names unknown birth place {compact[:6]}") from exc
    return compact
