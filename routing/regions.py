"""GB/T 2260 administrative division codes: every province-level code, and Shandong down to county level.

ubridge serves Shandong utilities, so only Shandong is tabulated in full (current codes, after the 2019 Laiwu
merger and the 2020 Penglai/Changdao merger). Sites elsewhere are accepted on their province prefix alone:
rejecting a valid out-of-province code would dead-letter a real record, while the province check still
catches most typing errors.

A code has three levels: ``37`` province, ``3706`` prefecture city, ``370602`` county-level division;
the higher levels pad with zeros (``370600``, ``370000``).

Example:
    >>> region_name("370602")
    '芝罘区'
    >>> parent_codes("370602")
    ('370600', '370000')
"""

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

_CODE: Final = re.compile(r"[0-9]{6}")
_SHANDONG_PREFIX: Final = "37"

# The 34 province-level divisions; 810000/820000 are the special administrative regions.
PROVINCES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "110000": "北京市",
        "120000": "天津市",
        "130000": "河北省",
        "140000": "山西省",
        "150000": "内蒙古自治区",
        "210000": "辽宁省",
        "220000": "吉林省",
        "230000": "黑龙江省",
        "310000": "上海市",
        "320000": "江苏省",
        "330000": "浙江省",
        "340000": "安徽省",
        "350000": "福建省",
        "360000": "江西省",
        "370000": "山东省",
        "410000": "河南省",
        "420000": "湖北省",
        "430000": "湖南省",
        "440000": "广东省",
        "450000": "广西壮族自治区",
        "460000": "海南省",
        "500000": "重庆市",
        "510000": "四川省",
        "520000": "贵州省",
        "530000": "云南省",
        "540000": "西藏自治区",
        "610000": "陕西省",
        "620000": "甘肃省",
        "630000": "青海省",
        "640000": "宁夏回族自治区",
        "650000": "新疆维吾尔自治区",
        "710000": "台湾省",
        "810000": "香港特别行政区",
        "820000": "澳门特别行政区",
    }
)

# Shandong province, its 16 prefecture cities and their county-level divisions as of 2023. The "市辖区"
# placeholders (370101, ...) are left out: they name no place a project could be sited in.
SHANDONG: Final[Mapping[str, str]] = MappingProxyType(
    {
        "370000": "山东省",
        "370100": "济南市",
        "370102": "历下区",
        "370103": "市中区",
        "370104": "槐荫区",
        "370105": "天桥区",
        "370112": "历城区",
        "370113": "长清区",
        "370114": "章丘区",
        "370115": "济阳区",
        "370116": "莱芜区",
        "370117": "钢城区",
        "370124": "平阴县",
        "370126": "商河县",
        "370200": "青岛市",
        "370202": "市南区",
        "370203": "市北区",
        "370211": "黄岛区",
        "370212": "崂山区",
        "370213": "李沧区",
        "370214": "城阳区",
        "370215": "即墨区",
        "370281": "胶州市",
        "370283": "平度市",
        "370285": "莱西市",
        "370300": "淄博市",
        "370302": "淄川区",
        "370303": "张店区",
        "370304": "博山区",
        "370305": "临淄区",
        "370306": "周村区",
        "370321": "桓台县",
        "370322": "高青县",
        "370323": "沂源县",
        "370400": "枣庄市",
        "370402": "市中区",
        "370403": "薛城区",
        "370404": "峄城区",
        "370405": "台儿庄区",
        "370406": "山亭区",
        "370481": "滕州市",
        "370500": "东营市",
        "370502": "东营区",
        "370503": "河口区",
        "370505": "垦利区",
        "370522": "利津县",
        "370523": "广饶县",
        "370600": "烟台市",
        "370602": "芝罘区",
        "370611": "福山区",
        "370612": "牟平区",
        "370613": "莱山区",
        "370614": "蓬莱区",
        "370681": "龙口市",
        "370682": "莱阳市",
        "370683": "莱州市",
        "370685": "招远市",
        "370686": "栖霞市",
        "370687": "海阳市",
        "370700": "潍坊市",
        "370702": "潍城区",
        "370703": "寒亭区",
        "370704": "坊子区",
        "370705": "奎文区",
        "370724": "临朐县",
        "370725": "昌乐县",
        "370781": "青州市",
        "370782": "诸城市",
        "370783": "寿光市",
        "370784": "安丘市",
        "370785": "高密市",
        "370786": "昌邑市",
        "370800": "济宁市",
        "370811": "任城区",
        "370812": "兖州区",
        "370826": "微山县",
        "370827": "鱼台县",
        "370828": "金乡县",
        "370829": "嘉祥县",
        "370830": "汶上县",
        "370831": "泗水县",
        "370832": "梁山县",
        "370881": "曲阜市",
        "370883": "邹城市",
        "370900": "泰安市",
        "370902": "泰山区",
        "370911": "岱岳区",
        "370921": "宁阳县",
        "370923": "东平县",
        "370982": "新泰市",
        "370983": "肥城市",
        "371000": "威海市",
        "371002": "环翠区",
        "371003": "文登区",
        "371082": "荣成市",
        "371083": "乳山市",
        "371100": "日照市",
        "371102": "东港区",
        "371103": "岚山区",
        "371121": "五莲县",
        "371122": "莒县",
        "371300": "临沂市",
        "371302": "兰山区",
        "371311": "罗庄区",
        "371312": "河东区",
        "371321": "沂南县",
        "371322": "郯城县",
        "371323": "沂水县",
        "371324": "兰陵县",
        "371325": "费县",
        "371326": "平邑县",
        "371327": "莒南县",
        "371328": "蒙阴县",
        "371329": "临沭县",
        "371400": "德州市",
        "371402": "德城区",
        "371403": "陵城区",
        "371422": "宁津县",
        "371423": "庆云县",
        "371424": "临邑县",
        "371425": "齐河县",
        "371426": "平原县",
        "371427": "夏津县",
        "371428": "武城县",
        "371481": "乐陵市",
        "371482": "禹城市",
        "371500": "聊城市",
        "371502": "东昌府区",
        "371503": "茌平区",
        "371521": "阳谷县",
        "371522": "莘县",
        "371524": "东阿县",
        "371525": "冠县",
        "371526": "高唐县",
        "371581": "临清市",
        "371600": "滨州市",
        "371602": "滨城区",
        "371603": "沾化区",
        "371621": "惠民县",
        "371622": "阳信县",
        "371623": "无棣县",
        "371625": "博兴县",
        "371681": "邹平市",
        "371700": "菏泽市",
        "371702": "牡丹区",
        "371703": "定陶区",
        "371721": "曹县",
        "371722": "单县",
        "371723": "成武县",
        "371724": "巨野县",
        "371725": "郓城县",
        "371726": "鄄城县",
        "371728": "东明县",
    }
)

_NAMES: Final[Mapping[str, str]] = MappingProxyType({**PROVINCES, **SHANDONG})


def region_name(code: str) -> str | None:
    """Return the official name of a tabulated region.

    Args:
        code: A 6-digit GB/T 2260 code.

    Returns:
        The name, or ``None`` for a code outside the table (including valid codes outside Shandong below
        province level).
    """
    return _NAMES.get(code)


def is_known_region(code: str) -> bool:
    """Tell whether ``code`` is a region ubridge accepts as a site or prefix.

    Args:
        code: A 6-digit GB/T 2260 code.

    Returns:
        ``True`` for any tabulated code, and for any 6-digit code outside Shandong whose province prefix is
        known; ``False`` for anything else, including untabulated Shandong codes.
    """
    if code in _NAMES:
        return True
    if _CODE.fullmatch(code) is None:
        return False
    province = code[:2]
    return province != _SHANDONG_PREFIX and f"{province}0000" in PROVINCES


def parent_codes(code: str) -> tuple[str, ...]:
    """Return the enclosing regions of ``code``, nearest first.

    The levels are structural (zero padding), so this works for untabulated codes too.

    Args:
        code: A 6-digit GB/T 2260 code.

    Returns:
        ``("370600", "370000")`` for a county, ``("370000",)`` for a prefecture city, ``()`` for a province.

    Raises:
        ValueError: If ``code`` is not 6 ASCII digits.
    """
    if _CODE.fullmatch(code) is None:
        msg = f"region code {code!r} is not 6 digits"
        raise ValueError(msg)
    province = f"{code[:2]}0000"
    prefecture = f"{code[:4]}00"
    if code == province:
        return ()
    if code == prefecture:
        return (province,)
    return (prefecture, province)
