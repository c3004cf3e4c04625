"""Masking of personal data (mobile numbers, ID numbers, names of persons) before it reaches a log line.

:func:`mask_text` runs on every string value the log processor sees, so it is one precompiled regular
expression whose replacement callback only runs on a hit.

Example:
    >>> mask_text("联系人 张伟 13912345678, 身份证 370602199001011234")
    '联系人 张伟 139****5678, 身份证 3706**********1234'
"""

import re
from typing import Final

from stdnum.cn import ric, uscc

# A number glued to letters or digits is part of a longer token (a USCC, a file name, a hash), not a number
# on its own; the ASCII-alphanumeric lookarounds keep those intact while Chinese text around a number does
# not prevent masking. The leading lookahead lets the engine skip most characters before trying the rest.
_PERSONAL: Final = re.compile(
    r"(?=[+1-8])(?<![0-9A-Za-z])(?:"
    # ID number: a province prefix (81-83: residence permits), 4 digits, a plausible birth date, 3 digits
    # and the check character. The date keeps project codes, amounts and most USCCs out.
    r"(?P<id>(?:1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[1-3])[0-9]{4}"
    r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx])"
    r"|"
    # Mobile number, optionally after +86/86 and written 3-4-4 with spaces or dashes.
    r"(?:\+?86[- ]?)?(?P<head>1[3-9][0-9])(?P<sep1>[- ]?)[0-9]{4}(?P<sep2>[- ]?)(?P<tail>[0-9]{4})"
    r")(?![0-9A-Za-z])"
)
_MASK: Final = "*"


def mask_mobile(number: str) -> str:
    """Keep the first 3 and last 4 characters of a phone number: ``139****5678``.

    Args:
        number: The number; anything shorter than 8 characters is masked whole.

    Returns:
        The masked number, as long as the input.
    """
    return _keep_ends(number, 3, 4)


def mask_id_number(number: str) -> str:
    """Keep the first 4 (province and city) and last 4 characters of an ID number: ``3706**********123X``.

    Args:
        number: The ID number; anything shorter than 9 characters is masked whole.

    Returns:
        The masked number, as long as the input.
    """
    return _keep_ends(number, 4, 4)


def mask_name(name: str) -> str:
    """Keep only the first character of a person's name (the family name for most Chinese names): ``张*``.

    Args:
        name: The name; a single character is masked whole because it would otherwise stay as it was.

    Returns:
        The masked name, as long as the input.
    """
    if len(name) <= 1:
        return _MASK * len(name)
    return name[0] + _MASK * (len(name) - 1)


def mask_text(text: str) -> str:
    """Mask every mobile number and ID number found in free text.

    An 18-character candidate whose check character fails as an ID number but passes as a USCC is a USCC
    and stays readable; a candidate failing both is masked, as a mistyped ID number is still personal data.

    Args:
        text: Any string, e.g. a log message or a field value.

    Returns:
        ``text`` with the middle of each number replaced by ``*``.
    """
    return _PERSONAL.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if match.group("id") is None:
        prefix = found[: match.start("head") - match.start()]
        return f"{prefix}{match['head']}{match['sep1']}****{match['sep2']}{match['tail']}"
    upper = found.upper()
    if ric.calc_check_digit(upper) != upper[17] and uscc.calc_check_digit(upper[:17]) == upper[17]:
        return found
    return mask_id_number(found)


def _keep_ends(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return _MASK * len(value)
    return value[:head] + _MASK * (len(value) - head - tail) + value[-tail:]
