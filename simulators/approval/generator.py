"""Seeded generation of realistic 工改系统 project events (data interface, vendor format "default").

Each project walks the four approval stages (``dybzspjdxh`` 1 立项用地规划许可, 2 工程建设许可,
3 施工许可, 4 竣工验收) with one item per stage: an event with ``blzt`` 1 (接件, received), then one with
11 (办结/准予, granted). About 3% of items are refused instead (``blzt`` 13) and that project stops. A few
projects are in flight at once, so their events interleave; ``blsj`` advances through office hours
(Mon-Fri 09:00-17:30, Asia/Shanghai). Identifiers are valid: project codes follow the national format
and builders' 统一社会信用代码 carry correct GB 32100 and GB 11714 check characters.

The same seed and the same calls always yield the same events.

Example:
    >>> generator = EventGenerator(seed=7)
    >>> first = generator.generate(10)[0]
    >>> first["seq"], first["dybzspjdxh"], first["blzt"]
    (1, 1, 1)
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # China keeps no daylight saving time
BLSJ_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_START = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
RECEIVED, GRANTED, REFUSED = 1, 11, 13
REFUSAL_RATE = 0.03
DEMAND_KNOWN_RATE = 0.7
SERVICE_RATE = 0.6  # chance that a project with known demand needs each of water, gas and heat
# Between consecutive events of the whole feed; with eight projects in flight, one project's steps come
# about six office hours apart. About 450 events fit before 2027 from the default start.
MEAN_GAP_MINUTES = 45
NEW_PROJECT_CHANCE = 0.5  # per event, while fewer than in_flight projects are open
NEW_STYLE_ORG_CODE_RATE = 0.5  # share of builders registered after 2015, whose org code starts with MA

SERVED_REGIONS: dict[str, tuple[str, str]] = {
    "370602": ("烟台市", "芝罘区"),
    "370611": ("烟台市", "福山区"),
    "370613": ("烟台市", "莱山区"),
    "370685": ("烟台市", "招远市"),
    "371502": ("聊城市", "东昌府区"),
    "371521": ("聊城市", "阳谷县"),
    "370102": ("济南市", "历下区"),
    "370112": ("济南市", "历城区"),
}
UNSERVED_REGIONS: dict[str, tuple[str, str]] = {
    "370202": ("青岛市", "市南区"),
    "370212": ("青岛市", "崂山区"),
}
UNKNOWN_REGION = "379999"
BAD_STAGE = 9

# Per stage: (item code, item name, result document name, document number prefix or None for a dated number).
STAGE_ITEMS: dict[int, tuple[tuple[str, str, str, str | None], ...]] = {
    1: (
        ("000117001", "建设项目用地预审与选址意见书核发", "建设项目用地预审与选址意见书", "用字第"),
        ("000117002", "建设用地规划许可证核发", "建设用地规划许可证", "地字第"),
    ),
    2: (("000117004", "建设工程规划许可证核发", "建设工程规划许可证", "建字第"),),
    3: (("000115001", "建筑工程施工许可证核发", "建筑工程施工许可证", None),),
    4: (("000115101", "竣工联合验收", "竣工联合验收意见书", "联验字第"),),
}
STAGE_DRAWINGS = {2: (("ZP", "总平面图"), ("GX", "室外管线综合图"))}
DEFECTS = ("project_code", "region", "missing_name", "bad_time", "bad_stage")

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_MOBILE_PREFIXES = (
    *(f"13{digit}" for digit in range(10)),
    *("150", "151", "152", "153", "155", "156", "157", "158", "159", "166", "176", "177", "178"),
    *(f"18{digit}" for digit in range(10)),
    *("191", "198", "199"),
)
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN_NAMES = (
    *"伟芳娜敏静丽强磊军洋勇艳杰涛明",
    *"秀英 建国 海燕 志强 晓东 文博 子涵 国庆 红梅 立新".split(),
)
_STEMS = tuple("幸福 金沙 滨海 东方 鲁东 海润 万华 泰和 华府 天成 祥和 锦绣 新城".split())
_PROJECT_KINDS = tuple(
    "里住宅小区 花园住宅小区 安置房项目 商业综合体 科创产业园 中学教学综合楼 医院门诊楼 物流中心".split()
)
_PHASES = ("", "", "一期", "二期", "三期")
_ROADS = tuple("幸福南路 南大街 迎春大街 观海路 泉城路 经十路 花园北街 东昌路 金山路 滨河路".split())
_TRADES = tuple("置业 房地产开发 建设发展 城市建设投资 实业 科技发展".split())
_INDUSTRIES = ("47", "48", "70")  # 房屋建筑业, 土木工程建筑业, 房地产业 (GB/T 4754 divisions)
_PROJECT_TYPES = ("01", "02", "03")  # 审批, 核准, 备案
_WATER_PIPES = ((80.0, 50), (200.0, 80), (350.0, 100), (800.0, 150))  # (max m3/d, DN)


def org_code_check(body: str) -> str:
    """Return the GB 11714 check character of an 8-character organisation code body."""
    total = sum(int(char, 36) * weight for char, weight in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def uscc_check(first17: str) -> str:
    """Return the GB 32100 check character of the first 17 characters of a 统一社会信用代码."""
    weighted = (USCC_ALPHABET.index(char) * weight for char, weight in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[-sum(weighted) % 31]


def make_uscc(region: str, rng: random.Random) -> str:
    """Draw a valid code of a company registered in ``region`` (old numeric or new ``MA`` org code)."""
    if rng.random() < NEW_STYLE_ORG_CODE_RATE:
        body = "MA" + "".join(rng.choices(USCC_ALPHABET, k=6))
    else:
        body = "".join(rng.choices("0123456789", k=8))
    first17 = f"91{region}{body}{org_code_check(body)}"
    return first17 + uscc_check(first17)


def advance_office_time(moment: datetime, minutes: int) -> datetime:
    """Move ``moment`` forward by ``minutes`` of office time, Mon-Fri 09:00-17:30."""
    current, remaining = _office_open(moment), timedelta(minutes=minutes)
    while True:
        close = datetime.combine(current.date(), time(17, 30), tzinfo=current.tzinfo)
        if current + remaining <= close:
            return current + remaining
        remaining -= close - current
        current = _office_open(close)


def _office_open(moment: datetime) -> datetime:
    """Return ``moment`` if the office is open then, else the next opening time."""
    opening = datetime.combine(moment.date(), time(9), tzinfo=moment.tzinfo)
    closing = datetime.combine(moment.date(), time(17, 30), tzinfo=moment.tzinfo)
    if moment.weekday() < 5 and moment < closing:  # noqa: PLR2004 - Saturday is weekday 5
        return max(moment, opening)
    day = opening + timedelta(days=1)
    while day.weekday() >= 5:  # noqa: PLR2004 - Saturday is weekday 5
        day += timedelta(days=1)
    return day


def make_demand(floor_area: float, rng: random.Random) -> list[dict[str, Any]]:
    """Draw a non-empty utility demand sized to a building of ``floor_area`` m²."""
    services = [service for service in ("供水", "供气", "供热") if rng.random() < SERVICE_RATE]
    demand = []
    for service in services or [rng.choice(("供水", "供气", "供热"))]:
        if service == "供水":
            volume = round(floor_area * rng.uniform(0.004, 0.009), 1)
            pipe = next((dn for limit, dn in _WATER_PIPES if volume <= limit), 200)
            demand.append({"fwlx": service, "gj_mm": pipe, "yl": volume, "yldw": "m3/d"})
        elif service == "供气":
            volume = round(floor_area * rng.uniform(0.0008, 0.002), 1)
            demand.append({"fwlx": service, "yl": volume, "yldw": "m3/h"})
        else:
            demand.append({"fwlx": service, "grmj": round(floor_area * rng.uniform(0.8, 0.95), 1)})
    return demand


def inject_defect(event: dict[str, Any], defect: str, rng: random.Random) -> dict[str, Any]:
    """Return a copy of ``event`` with exactly one ``defect`` (one of `DEFECTS`) a validator must catch."""
    broken = dict(event)
    if defect == "project_code":
        broken["xmdm"] = event["xmdm"][:-1]
    elif defect == "region":
        broken["jsddxzqh"] = UNKNOWN_REGION
    elif defect == "missing_name":
        del broken["xmmc"]
    elif defect == "bad_time":
        broken["blsj"] = rng.choice(("待定", "2026-13-01 09:00:00", "2026-11-31 10:00:00"))
    elif defect == "bad_stage":
        broken["dybzspjdxh"] = BAD_STAGE
    else:
        message = f"unknown defect {defect!r}; choose from {DEFECTS}"
        raise ValueError(message)
    return broken


@dataclass
class _Project:
    info: dict[str, Any]
    contact: dict[str, str]
    demand: list[dict[str, Any]] | None
    stage: int = 1
    item: tuple[str, str, str, str | None] = STAGE_ITEMS[1][0]
    instance: str = ""
    received: bool = False
    documents: list[dict[str, str]] = field(default_factory=list)


class EventGenerator:
    """Stateful, seeded source of project events; each `generate` call continues the same story."""

    def __init__(self, seed: int = 7, *, start: datetime = DEFAULT_START, in_flight: int = 8) -> None:
        """Create a generator.

        Args:
            seed: seed of the random generator; equal seeds and calls give equal events.
            start: time of the first event (aware; moved to the next office opening if outside hours).
            in_flight: how many projects at most are between their first and last event at once.
        """
        self._rng = random.Random(seed)
        self._clock = _office_open(start.astimezone(SHANGHAI))
        self._in_flight = max(1, in_flight)
        self._seq = 0
        self._serial = self._rng.randint(100, 900)
        self._instance_serial = self._rng.randint(10_000, 90_000)
        self._document_serial = self._rng.randint(100, 900)
        self._active: list[_Project] = []

    def generate(self, n_events: int, *, invalid_rate: float = 0.0, unserved_rate: float = 0.0) -> list[dict[str, Any]]:
        """Generate the next ``n_events`` events.

        Args:
            n_events: how many events to generate.
            invalid_rate: fraction of these events (rounded to a count) carrying exactly one defect.
            unserved_rate: probability that a newly started project is sited in Qingdao (no demo utility).

        Returns:
            The new events, in ``seq`` order.

        Raises:
            ValueError: a negative count or a rate outside [0, 1].
        """
        if n_events < 0 or not (0.0 <= invalid_rate <= 1.0 and 0.0 <= unserved_rate <= 1.0):
            message = "n_events must not be negative and rates must lie in [0, 1]"
            raise ValueError(message)
        defective = set(self._rng.sample(range(n_events), round(n_events * invalid_rate)))
        events = []
        for index in range(n_events):
            event = self._step(self._pick_project(unserved_rate))
            if index in defective:
                event = inject_defect(event, self._rng.choice(DEFECTS), self._rng)
            events.append(event)
        return events

    def _pick_project(self, unserved_rate: float) -> _Project:
        room = len(self._active) < self._in_flight
        if not self._active or (room and self._rng.random() < NEW_PROJECT_CHANCE):
            self._active.append(self._new_project(unserved_rate))
            return self._active[-1]
        return self._rng.choice(self._active)

    def _new_project(self, unserved_rate: float) -> _Project:
        rng = self._rng
        regions = UNSERVED_REGIONS if rng.random() < unserved_rate else SERVED_REGIONS
        region = rng.choice(tuple(regions))
        city, district = regions[region]
        self._serial += rng.randint(1, 40)
        year = rng.choices((2024, 2025, 2026), weights=(1, 2, 4))[0]
        stem, industry = rng.choice(_STEMS), rng.choice(_INDUSTRIES)
        land_area = round(rng.uniform(3_000, 80_000), 1)
        floor_area = round(land_area * rng.uniform(1.2, 3.0), 1)
        info = {
            # The serial block has six digits: a run of a million rows and more wraps it, as real serials restart.
            "xmdm": f"{year}-{region}-{industry}-{rng.choice(_PROJECT_TYPES)}-{self._serial % 1_000_000:06d}",
            "xmmc": f"{district}{stem}{rng.choice(_PROJECT_KINDS)}{rng.choice(_PHASES)}",
            "jsdd": f"山东省{city}{district}{rng.choice(_ROADS)}{rng.randint(1, 399)}号",
            "jsddxzqh": region,
            "jsdw": f"{city}{stem}{rng.choice(_TRADES)}有限公司",
            "jsdwdm": make_uscc(region, rng),
            "jsxz": rng.choices(("新建", "改建", "扩建"), weights=(8, 1, 1))[0],
            "ztze": round(floor_area * rng.uniform(0.25, 0.45), 1),  # 万元, 2,500-4,500 CNY per m²
            "ydmj": land_area,
            "jzmj": floor_area,
        }
        contact = {
            "lxr": rng.choice(_SURNAMES) + rng.choice(_GIVEN_NAMES),
            "lxrsjh": rng.choice(_MOBILE_PREFIXES) + "".join(rng.choices("0123456789", k=8)),
        }
        demand = make_demand(floor_area, rng) if rng.random() < DEMAND_KNOWN_RATE else None
        return _Project(info=info, contact=contact, demand=demand)

    def _step(self, project: _Project) -> dict[str, Any]:
        gap_minutes = min(max(self._rng.expovariate(1 / MEAN_GAP_MINUTES), 3), 240)
        self._clock = advance_office_time(self._clock, int(gap_minutes))
        if not project.received:
            project.item = self._rng.choice(STAGE_ITEMS[project.stage])
            self._instance_serial += 1
            project.instance = f"{project.info['jsddxzqh']}{project.item[0]}{self._instance_serial:08d}"
            project.received = True
            return self._event(project, RECEIVED)
        stage = project.stage
        if self._rng.random() < REFUSAL_RATE:
            self._active.remove(project)
            return self._event(project, REFUSED)
        project.documents.extend(self._documents(project))
        project.stage, project.received = stage + 1, False
        if project.stage > len(STAGE_ITEMS):
            self._active.remove(project)
        return self._event(project, GRANTED, stage=stage)

    def _documents(self, project: _Project) -> list[dict[str, str]]:
        _, _, title, prefix = project.item
        region, xmdm = project.info["jsddxzqh"], project.info["xmdm"]
        self._document_serial += 1
        if prefix is None:  # 施工许可证编号: region, date, serial
            number = f"{region}{self._clock:%Y%m%d}{self._document_serial % 100:02d}01"
        else:
            number = f"{prefix}{region}{self._clock:%Y}{self._document_serial:05d}号"
        documents = [_document(xmdm, "PERMIT", number, title)]
        for code, drawing in STAGE_DRAWINGS.get(project.stage, ()):
            documents.append(_document(xmdm, "DRAWING", f"{xmdm}-{code}-01", drawing))
        return documents

    def _event(self, project: _Project, status: int, *, stage: int | None = None) -> dict[str, Any]:
        self._seq += 1
        code, name = project.item[:2]
        event: dict[str, Any] = {"seq": self._seq, **project.info}
        event |= {"spsxbm": code, "spsxslbm": project.instance, "spsxmc": name}
        event |= {
            "dybzspjdxh": stage or project.stage,
            "blzt": status,
            "blsj": f"{self._clock:{BLSJ_FORMAT}}",
        }
        event |= project.contact
        if project.demand is not None:
            event["xqxx"] = [dict(entry) for entry in project.demand]
        event["fjxx"] = [dict(document) for document in project.documents]
        event["sjyxbs"] = 1
        return event


def _document(xmdm: str, kind: str, number: str, title: str) -> dict[str, str]:
    digest = hashlib.sha256(f"{xmdm}|{kind}|{number}|{title}".encode()).hexdigest()
    return {
        "wjlx": kind,
        "wjbh": number,
        "wjmc": title,
        "xzdz": f"https://gcxm.example.gov.cn/files/{digest[:24]}.pdf",
        "sha256": digest,
    }
