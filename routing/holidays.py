"""A provisional holiday schedule for a year the State Council has not published yet, from the statutory rules.

Until the State Council General Office publishes a year's notice (国务院办公厅关于<year>年部分节假日安排的通知,
usually in November), nobody knows that year's make-up working days; its days off, though, follow from two texts:

- 《全国年节及纪念日放假办法》 as amended by 国务院令第795号 (2024-11-10, in force 2025-01-01), 第二条: 元旦 1 day
  (1月1日); 春节 4 days (农历除夕、正月初一至初三); 清明节 1 day (农历清明当日); 劳动节 2 days (5月1日、2日);
  端午节 1 day (农历端午当日); 中秋节 1 day (农历中秋当日); 国庆节 3 days (10月1日至3日). 第六条: "全体公民放假的
  假日，如果适逢星期六、星期日，应当在工作日补假".
- 国办发明电〔2024〕12号 (the 2025 notice) states the arrangement principles that followed the amendment: "除个别特殊
  情形外，春节自农历除夕起放假调休8天，国庆节自10月1日起放假调休7天，劳动节放假调休5天，元旦、清明节、端午节、中秋节
  分别放假调休或连休3天（如逢周三则只在当日放假），国庆节放假如逢中秋节则合并放假8天".

So a provisional year has these days off, and no make-up days:

- 春节: 除夕 and the next 7 days (8 in all); 劳动节: 5月1日 to 5日; 国庆节: 10月1日 to 7日, to 8日 when 中秋 falls
  on 10月1日-8日 (合并放假8天).
- 元旦, 清明节, 端午节 and 中秋节 (when not merged): the day itself; on a Saturday or Sunday, the next working day
  too (补假, 第六条). A Tuesday or Thursday holiday is bridged in practice to the Monday or Friday (调休) in
  exchange for a weekend make-up day; the exchange is unknowable before the notice, so neither side is added and
  the week keeps its number of working days.

Lunar dates and the 清明 solar term come from ``lunar_python`` (6tail's maintained lunar calendar library).

Example:
    >>> days = provisional_days_off(2027)
    >>> days[date(2027, 2, 5)], days[date(2027, 2, 12)]
    ('春节', '春节 (调休)')
"""

from datetime import date, timedelta
from typing import Final

from lunar_python import Lunar, Solar

RULES_IN_FORCE_FROM: Final = 2025  # 国务院令第795号 takes effect on 2025-01-01
LAST_PROVISIONAL_YEAR: Final = 2099  # beyond, the lunar tables' leap-month placement is not settled
RULES_SOURCE: Final = (
    "《全国年节及纪念日放假办法》(国务院令第795号) 第二条、第六条; 国办发明电〔2024〕12号 放假调休原则"
)

_ONE_DAY: Final = timedelta(days=1)
_SATURDAY: Final = 5
_SPRING_FESTIVAL_DAYS: Final = 8
_LABOUR_DAY_DAYS: Final = 5
_NATIONAL_DAY_DAYS: Final = 7
_MERGED_NATIONAL_DAY_DAYS: Final = 8
_STATUTORY_SPRING_DAYS: Final = 4  # 除夕、正月初一至初三
_STATUTORY_LABOUR_DAYS: Final = 2
_STATUTORY_NATIONAL_DAYS: Final = 3


class NoProvisionalRulesError(ValueError):
    """The statutory rules above do not speak for this year (before they took effect, or too far ahead)."""


def provisional_days_off(year: int) -> dict[date, str]:
    """Return the year's days off under the statutory rules, each with its holiday's name.

    Weekend days inside a holiday break are included (they are part of the break); ordinary weekends are not.
    Names: the holiday (``春节``) for a statutory day, ``(调休)`` for the rest of a long break, ``(补休)`` for a
    weekday given for a holiday that fell on a weekend.

    Raises:
        NoProvisionalRulesError: If ``year`` is before 2025 or after 2099.
    """
    if not RULES_IN_FORCE_FROM <= year <= LAST_PROVISIONAL_YEAR:
        msg = f"the 2024 statutory holiday rules cover {RULES_IN_FORCE_FROM}-{LAST_PROVISIONAL_YEAR}, not {year}"
        raise NoProvisionalRulesError(msg)
    off: dict[date, str] = {}
    eve = _lunar(year, 1, 1) - _ONE_DAY
    _break(off, "春节", eve, _SPRING_FESTIVAL_DAYS, statutory=_STATUTORY_SPRING_DAYS)
    _break(off, "劳动节", date(year, 5, 1), _LABOUR_DAY_DAYS, statutory=_STATUTORY_LABOUR_DAYS)
    mid_autumn = _lunar(year, 8, 15)
    national_day = date(year, 10, 1)
    merged = national_day <= mid_autumn <= national_day + timedelta(days=_MERGED_NATIONAL_DAY_DAYS - 1)
    length = _MERGED_NATIONAL_DAY_DAYS if merged else _NATIONAL_DAY_DAYS
    _break(off, "国庆节", national_day, length, statutory=_STATUTORY_NATIONAL_DAYS)
    if merged:
        off[mid_autumn] = "国庆节、中秋节" if mid_autumn < national_day + timedelta(days=3) else "中秋节"
    singles = [("元旦", date(year, 1, 1)), ("清明节", _qingming(year)), ("端午节", _lunar(year, 5, 5))]
    if not merged:
        singles.append(("中秋节", mid_autumn))
    for name, day in sorted(singles, key=lambda item: item[1]):
        _single(off, name, day)
    return dict(sorted(off.items()))


def _break(off: dict[date, str], name: str, first: date, length: int, *, statutory: int) -> None:
    for i in range(length):
        off[first + timedelta(days=i)] = name if i < statutory else f"{name} (调休)"


def _single(off: dict[date, str], name: str, day: date) -> None:
    off.setdefault(day, name)
    if day.weekday() < _SATURDAY:
        return
    substitute = day + _ONE_DAY
    while substitute.weekday() >= _SATURDAY or substitute in off:
        substitute += _ONE_DAY
    off[substitute] = f"{name} (补休)"


def _lunar(year: int, month: int, day: int) -> date:
    """The Gregorian date of a day of the lunar year that starts in ``year`` (a non-leap month)."""
    solar = Lunar.fromYmd(year, month, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def _qingming(year: int) -> date:
    # 清明 always falls on 4-6 April: the lunar year around mid-April holds it in its solar-term table.
    solar = Solar.fromYmd(year, 4, 15).getLunar().getJieQiTable()["清明"]
    return date(solar.getYear(), solar.getMonth(), solar.getDay())
