import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.regions import PROVINCES, SHANDONG, is_known_region, parent_codes, region_name

PREFECTURES = {
    "370100": "济南市",
    "370200": "青岛市",
    "370300": "淄博市",
    "370400": "枣庄市",
    "370500": "东营市",
    "370600": "烟台市",
    "370700": "潍坊市",
    "370800": "济宁市",
    "370900": "泰安市",
    "371000": "威海市",
    "371100": "日照市",
    "371300": "临沂市",
    "371400": "德州市",
    "371500": "聊城市",
    "371600": "滨州市",
    "371700": "菏泽市",
}

YANTAI = {
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
}


def test_shandong_has_its_sixteen_prefecture_cities() -> None:
    """Every current prefecture city is tabulated; 3712 (Laiwu, merged into Jinan in 2019) is not."""
    prefectures = {code: name for code, name in SHANDONG.items() if code.endswith("00") and code != "370000"}
    assert PREFECTURES == prefectures


def test_yantai_has_its_eleven_county_level_divisions() -> None:
    """Yantai's table matches the 2020 reorganisation (蓬莱区 in, 长岛县 and 蓬莱市 out)."""
    counties = {code: name for code, name in SHANDONG.items() if code.startswith("3706") and code != "370600"}
    assert YANTAI == counties


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("370102", "历下区"),
        ("370103", "市中区"),
        ("370104", "槐荫区"),
        ("370105", "天桥区"),
        ("370112", "历城区"),
        ("370116", "莱芜区"),
        ("370202", "市南区"),
        ("370203", "市北区"),
        ("370211", "黄岛区"),
        ("370212", "崂山区"),
        ("370303", "张店区"),
        ("371502", "东昌府区"),
        ("371503", "茌平区"),
        ("371521", "阳谷县"),
        ("371681", "邹平市"),
        ("370000", "山东省"),
        ("110000", "北京市"),
        ("820000", "澳门特别行政区"),
    ],
)
def test_region_name_of_tabulated_codes(code: str, name: str) -> None:
    """region_name returns the official name of tabulated codes."""
    assert name == region_name(code)


@pytest.mark.parametrize("code", ["370101", "370634", "371200", "370699", "110101", "", "abc"])
def test_region_name_of_untabulated_codes_is_none(code: str) -> None:
    """Placeholders, abolished counties and codes outside Shandong have no name."""
    assert region_name(code) is None


def test_the_table_is_consistent() -> None:
    """34 provinces; every Shandong code is 6 digits and its prefecture is tabulated."""
    assert 34 == len(PROVINCES)
    assert all(code.isdigit() and len(code) == 6 for code in [*PROVINCES, *SHANDONG])
    assert all(f"{code[:4]}00" in SHANDONG for code in SHANDONG)


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("370602", True),
        ("370600", True),
        ("370000", True),
        ("110000", True),
        ("650000", True),
        ("110101", True),
        ("440305", True),
        ("370699", False),
        ("370634", False),
        ("371200", False),
        ("370101", False),
        ("990000", False),
        ("830000", False),
        ("000000", False),
        ("37060", False),
        ("3706021", False),
        ("37060a", False),
        ("３７０６０２", False),
        ("", False),
    ],
)
def test_is_known_region(code: str, known: bool) -> None:
    """Shandong codes must be tabulated; elsewhere a known province prefix suffices."""
    assert known == is_known_region(code)


@given(st.sampled_from(sorted(set(PROVINCES) - {"370000"})), st.from_regex(r"[0-9]{4}", fullmatch=True))
def test_any_code_under_another_known_province_is_known(province: str, rest: str) -> None:
    """Outside Shandong, every 6-digit code with a known province prefix is accepted."""
    assert is_known_region(province[:2] + rest)


@given(st.text())
def test_is_known_region_never_raises(code: str) -> None:
    """Arbitrary text is answered, not raised on, and only 6-digit codes can be known."""
    assert not is_known_region(code) or (len(code) == 6 and code.isdigit())


@pytest.mark.parametrize(
    ("code", "parents"),
    [
        ("370602", ("370600", "370000")),
        ("370600", ("370000",)),
        ("370000", ()),
        ("110101", ("110100", "110000")),
    ],
)
def test_parent_codes(code: str, parents: tuple[str, ...]) -> None:
    """Parents are the prefecture then the province, nearest first."""
    assert parents == parent_codes(code)


@pytest.mark.parametrize("code", ["3706", "37060a", ""])
def test_parent_codes_rejects_malformed_codes(code: str) -> None:
    """A code that is not 6 digits is a programming error, not a region."""
    with pytest.raises(ValueError, match="not 6 digits"):
        parent_codes(code)
