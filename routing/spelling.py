"""The nearest valid spelling of a mistyped key or value, for configuration errors.

Example:
    >>> did_you_mean("WATR", ["WATER", "GAS", "HEAT"])
    "; did you mean 'WATER'?"
    >>> did_you_mean("POWER", ["WATER", "GAS", "HEAT"])
    ''
    >>> nearest_code("3760", ["3706", "3715"])
    '3706'
"""

import difflib
from collections.abc import Iterable
from typing import Final

_CUTOFF: Final = 0.65  # WATR → WATER and GSA → GAS, but not POWER → WATER


def nearest(value: object, choices: Iterable[object], *, cutoff: float = _CUTOFF) -> str | None:
    """The choice closest to ``value`` (case ignored), or None when none is close enough to be a typo.

    ``cutoff`` is difflib's similarity ratio a match needs; raise it for names that share long parts
    (``yantai-gas``, ``zhaoyuan-gas``), where a low one suggests a different utility.
    """
    by_folded = {str(choice).casefold(): str(choice) for choice in choices}
    matches = difflib.get_close_matches(str(value).casefold(), list(by_folded), n=1, cutoff=cutoff)
    return by_folded[matches[0]] if matches else None


def did_you_mean(value: object, choices: Iterable[object], *, cutoff: float = _CUTOFF) -> str:
    """``"; did you mean 'X'?"`` to append to an error message, or ``""`` when no choice is close."""
    match = nearest(value, choices, cutoff=cutoff)
    return "" if match is None or match == str(value) else f"; did you mean {match!r}?"


def nearest_code(value: str, codes: Iterable[str]) -> str | None:
    """A code one mistyped digit or one swap of neighbouring digits away from ``value``, or None.

    Codes are compared position by position: ``370699`` is not "close" to ``370983`` however many digits the
    two share, so the text similarity :func:`nearest` uses would suggest nonsense.
    """
    for code in sorted(codes):
        if len(code) != len(value) or code == value:
            continue
        differing = [i for i, (a, b) in enumerate(zip(code, value, strict=True)) if a != b]
        if len(differing) == 1 or _swapped(code, value, differing):
            return code
    return None


def _swapped(code: str, value: str, differing: list[int]) -> bool:
    if len(differing) != 2 or differing[1] != differing[0] + 1:  # noqa: PLR2004 - a swap changes two neighbours
        return False
    first, second = differing
    return code[first] == value[second] and code[second] == value[first]
