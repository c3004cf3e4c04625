"""The nearest valid spelling of a mistyped key or value, for configuration errors.

Example:
    >>> did_you_mean("WATR", ["WATER", "GAS", "HEAT"])
    "; did you mean 'WATER'?"
    >>> did_you_mean("POWER", ["WATER", "GAS", "HEAT"])
    ''
"""

import difflib
from collections.abc import Iterable
from typing import Final

_CUTOFF: Final = 0.6


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
