"""The 12345 government-hotline platform: work orders (工单) and return visits (回访) out, answers (反馈) in.

What the platform sends ubridge (field names: :mod:`routing.hotline`):

- Push, signed like every ubridge push (``X-Ubridge-Timestamp``, ``X-Ubridge-Signature: sha256=<hex
  HMAC-SHA256(secret, timestamp + "." + body)>``, UTF-8 or GBK): one work order per
  ``POST {ubridge}/v1/hotline/work-orders``, one return visit per ``POST {ubridge}/v1/hotline/return-visits``
  (:func:`push_records`).
- Pull feeds, ``Authorization: Bearer <token>``: ``GET /api/v1/work-orders?cursor=N&limit=M`` answers
  ``{"work_orders": [... seq > N ...], "next_cursor": <last seq or N>, "has_more": bool}`` and
  ``GET /api/v1/return-visits?cursor=N&limit=M`` answers ``{"return_visits": [...], ...}`` the same way.

What the platform takes from ubridge, the answer to an order (反馈):

- ``POST /api/v1/work-orders/{order_id}/answer`` with ``Authorization: Bearer <token>`` and
  ``Content-Type: application/json`` (UTF-8), body::

      {"order_id": "SD12345-20261125-000123",          the order answered; must equal the path's
       "result": "已派员检修，水压恢复正常",              what the utility did (办理结果), 1-4000 characters
       "answered_at": "2026-11-27T10:05:00+08:00",     ISO 8601 with its offset (or "YYYY-MM-DD HH:MM:SS",
                                                        Asia/Shanghai)
       "utility_id": "yantai-water"}                   the utility that handled it

- Answers: 200 ``{"order_id", "recorded": true, "duplicate": bool}`` (``duplicate``: this very answer was
  recorded before: sending again is safe); 400 a body that is not such an object, naming the field; 401 a bad
  token; 404 an order the platform never dispatched; 409 ``order_id`` differs from the path's; injected faults
  (:attr:`HotlinePlatform.faults`: 5xx with ``Retry-After``, latency, a stored answer acknowledged 503) as the
  other simulators inject them. Every answer received is kept in :attr:`HotlinePlatform.answers`.

A test or the demo makes the platform visit the caller of an answered order with
:meth:`HotlinePlatform.return_visit` (result SATISFIED, BASICALLY_SATISFIED, UNSATISFIED or UNREACHABLE): the
visit is published on the feed and returned, to be pushed if wanted.

Example:
    >>> platform = HotlinePlatform(token="t" * 24)
    >>> base = platform.start()
    >>> orders = make_work_orders(30, seed=7)
    >>> platform.publish(orders)
    >>> push_records(f"{ubridge}/v1/hotline/work-orders", "s3cret-s3cret-s3", orders)
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from simulators._http import (
    FaultPlan,
    JsonHttpServer,
    Request,
    Response,
    error_response,
    json_response,
    unauthorized,
)
from simulators.aishandong import PushResult, make_mobile, push_applications

WORK_ORDERS_PATH = "/v1/hotline/work-orders"
RETURN_VISITS_PATH = "/v1/hotline/return-visits"
ORDER_FEED_PATH = "/api/v1/work-orders"
VISIT_FEED_PATH = "/api/v1/return-visits"
ANSWER_PREFIX = "/api/v1/work-orders/"
ANSWER_SUFFIX = "/answer"
RESULT_WORDS = {
    "SATISFIED": "满意",
    "BASICALLY_SATISFIED": "基本满意",
    "UNSATISFIED": "不满意",
    "UNREACHABLE": "未接通",
}
# Counties of Shandong: 烟台 (芝罘, 福山, 招远), 济南 (历下, 市中), 聊城 (东昌府, 阳谷); 青岛 (市南) has no utility in
# the demo's service areas, so its orders show the dead-letter path.
REGIONS = ("370602", "370611", "370685", "370102", "370103", "371502", "371521")
UNSERVED_REGION = "370202"
_SHANGHAI = timezone(timedelta(hours=8))
_MAX_RESULT = 4000
# 限期反馈: the platform's working days per kind of matter.
_CATEGORIES = (("投诉", 60, 5), ("求助", 25, 3), ("咨询", 10, 2), ("建议", 5, 5))
_SERVICE_WORDS = {"WATER": ("供水", "自来水"), "GAS": ("燃气", "天然气"), "HEAT": ("供热", "暖气")}
_MATTERS = {
    "WATER": (
        "家中自来水连续三天水压不足，早晚高峰时段基本无水，请尽快处理",
        "小区停水未提前通知，已停水一天仍未恢复供水",
        "水表走字异常，本月水费比往月高出一倍，要求核查",
        "楼前供水管道破裂漏水，路面大量积水，影响通行",
        "自来水发黄有异味，家中老人孩子不敢饮用",
    ),
    "GAS": (
        "已通过爱山东缴纳燃气费，燃气表仍显示欠费无法用气",
        "楼道内闻到明显燃气异味，请尽快派人上门检查",
        "申请燃气开户已两周，至今无人联系安装",
        "天然气灶具打不着火，疑似管道气压不足",
        "燃气安检人员上门推销报警器，询问是否合规",
    ),
    "HEAT": (
        "室内温度仅十四度，暖气不热，家中有老人",
        "暖气片接口漏水，已自行关闭阀门，请派人维修",
        "供暖费已按时缴纳，至今未开栓供热",
        "小区供热管网改造后暖气时热时不热",
        "咨询今年供热收费标准及缴费方式",
    ),
}
_STREETS = {
    "3706": ("幸福南路", "南大街", "滨海路", "只楚路"),
    "3701": ("经十路", "泉城路", "历山路", "舜耕路"),
    "3715": ("东昌路", "柳园路", "兴华路", "振兴路"),
    "3702": ("香港中路", "东海西路"),
}
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛")
_ANONYMOUS_SHARE = 0.1


@dataclass(frozen=True)
class Answer:
    """One answer (反馈) the platform received."""

    order_id: str
    result: str
    answered_at: str
    utility_id: str


def working_days_after(moment: datetime, days: int) -> datetime:
    """``moment`` plus ``days`` working days, the platform's way: Saturdays and Sundays do not count."""
    due = moment
    while days:
        due += timedelta(days=1)
        if due.weekday() < 5:  # noqa: PLR2004 - Monday..Friday
            days -= 1
    return due


def make_work_orders(
    n: int,
    seed: int,
    *,
    regions: Sequence[str] = REGIONS,
    start: datetime | None = None,
    gap_minutes: tuple[int, int] = (5, 90),
) -> list[dict[str, Any]]:
    """``n`` realistic work orders in the platform's format, reproducible from ``seed``.

    Water, gas and heat in turn-ish (drawn), mostly 投诉, in the everyday words (自来水, 天然气, 暖气…); one caller in
    ten anonymous; ``pdsj`` runs from ``start`` (Asia/Shanghai, naive) on, ``gap_minutes`` (at least, below)
    apart; ``fkqx`` is the platform's deadline, 2-5 working days later by kind of matter.
    """
    rng = random.Random(seed)
    moment = start or datetime(2026, 11, 23, 8, 30)  # noqa: DTZ001 - the platform's wall-clock time
    kinds = [category for category, _, _ in _CATEGORIES]
    weights = [weight for _, weight, _ in _CATEGORIES]
    days = {category: limit for category, _, limit in _CATEGORIES}
    orders = []
    for index in range(n):
        region = rng.choice(regions)
        service = rng.choice(tuple(_MATTERS))
        category = rng.choices(kinds, weights)[0]
        moment += timedelta(minutes=rng.randrange(*gap_minutes))
        anonymous = rng.random() < _ANONYMOUS_SHARE
        street = rng.choice(_STREETS.get(region[:4], ("人民路",)))
        order_id = f"SD12345-{moment:%Y%m%d}-{seed % 100:02d}{index:04d}"
        orders.append(
            {
                "sjid": f"EV-{order_id}",
                "gdbh": order_id,
                "ywlb": _SERVICE_WORDS[service][index % 2],
                "sqlb": category,
                "xzqhdm": region,
                "fsdz": f"{street}{rng.randrange(1, 300)}号{rng.randrange(1, 6)}单元",
                "sqnr": rng.choice(_MATTERS[service]),
                "ldrxm": None if anonymous else rng.choice(_SURNAMES) + rng.choice(_GIVEN),
                "ldrdh": None if anonymous else make_mobile(rng),
                "xmdm": None,
                "pdsj": f"{moment:%Y-%m-%d %H:%M:%S}",
                "fkqx": f"{working_days_after(moment, days[category]):%Y-%m-%d %H:%M:%S}",
            }
        )
    return orders


def push_records(
    url: str, secret: str, records: Sequence[dict[str, Any]], *, charset: str = "utf-8", timeout_s: float = 10.0
) -> list[PushResult]:
    """POST each work order or return visit to ``url`` (the full ubridge URL), signed, in ``charset``."""
    return push_applications(url, secret, records, charset=charset, timeout_s=timeout_s)


class HotlinePlatform:
    """The platform: its feeds of orders and visits, and the endpoint that takes answers.

    Args:
        token: The bearer token ubridge uses on the feeds and the answer endpoint.
        host: Interface to bind.
        port: Port (0: a free one).
        seed: Seeds the fault plan.
    """

    def __init__(self, *, token: str, host: str = "127.0.0.1", port: int = 0, seed: int = 12345) -> None:
        self.faults = FaultPlan(seed)
        self.answers: list[Answer] = []
        self._token = token
        self._lock = threading.Lock()
        self._orders: list[dict[str, Any]] = []
        self._visits: list[dict[str, Any]] = []
        self._known: set[str] = set()
        self._http = JsonHttpServer(self._handle, host=host, port=port)

    def start(self) -> str:
        """Start serving; the base URL."""
        return self._http.start()

    def stop(self) -> None:
        """Stop serving."""
        self._http.stop()

    def publish(self, orders: Sequence[dict[str, Any]]) -> None:
        """Publish work orders on the feed, each given the next ``seq`` (an order published again is re-sent)."""
        with self._lock:
            for order in orders:
                self._orders.append({**order, "seq": len(self._orders) + 1})
                if isinstance(order.get("gdbh"), str):
                    self._known.add(order["gdbh"])

    def dispatched(self, orders: Sequence[dict[str, Any]]) -> None:
        """Record work orders the platform pushes rather than publishes: it takes their answers too."""
        with self._lock:
            self._known.update(order["gdbh"] for order in orders if isinstance(order.get("gdbh"), str))

    def answered(self, order_id: str) -> list[Answer]:
        """The answers received for one order, in order of arrival."""
        with self._lock:
            return [answer for answer in self.answers if answer.order_id == order_id]

    def return_visit(
        self, order_id: str, result: str, *, comment: str | None = None, visited_at: datetime | None = None
    ) -> dict[str, Any]:
        """Visit the caller of an answered order: the visit (platform format), also published on the visit feed.

        Raises:
            ValueError: ``result`` is not one of :data:`RESULT_WORDS`, or the order was never answered.
        """
        if result not in RESULT_WORDS:
            message = f"result must be one of {', '.join(RESULT_WORDS)}"
            raise ValueError(message)
        with self._lock:
            if not any(answer.order_id == order_id for answer in self.answers):
                message = f"order {order_id} has not been answered; the platform visits only answered orders"
                raise ValueError(message)
            number = len(self._visits) + 1
            moment = visited_at or datetime.now(_SHANGHAI)
            visit: dict[str, Any] = {
                "sjid": f"EV-HF-{number:06d}",
                "hfbh": f"HF-{order_id}-{number:04d}",
                "gdbh": order_id,
                "hfjg": RESULT_WORDS[result],
                "hfsj": f"{moment.astimezone(_SHANGHAI):%Y-%m-%d %H:%M:%S}",
                "hfsm": comment,
            }
            self._visits.append({**visit, "seq": number})
        return visit

    def _handle(self, request: Request) -> Response:
        if not request.bearer_matches(self._token):
            return unauthorized()
        if request.method == "GET" and request.path == ORDER_FEED_PATH:
            return self._fault() or self._page(request, self._orders, "work_orders")
        if request.method == "GET" and request.path == VISIT_FEED_PATH:
            return self._fault() or self._page(request, self._visits, "return_visits")
        if request.path.startswith(ANSWER_PREFIX) and request.path.endswith(ANSWER_SUFFIX):
            if request.method != "POST":
                return error_response(405, "use POST", headers=(("Allow", "POST"),))
            return self._fault() or self._answer(request, request.path[len(ANSWER_PREFIX) : -len(ANSWER_SUFFIX)])
        return error_response(404, f"no such resource: {request.path}")

    def _fault(self) -> Response | None:
        return self.faults.intercept()

    def _page(self, request: Request, entries: list[dict[str, Any]], items: str) -> Response:
        try:
            cursor = int(request.query.get("cursor", "0"))
            limit = max(1, min(500, int(request.query.get("limit", "100"))))
        except ValueError:
            return error_response(400, "cursor and limit must be integers")
        with self._lock:
            page = [entry for entry in entries if entry["seq"] > cursor][:limit]
            more = bool(page) and page[-1]["seq"] < len(entries)
        next_cursor = page[-1]["seq"] if page else cursor
        return json_response(200, {items: page, "next_cursor": next_cursor, "has_more": more})

    def _answer(self, request: Request, order_id: str) -> Response:
        try:
            body = request.json_object()
        except ValueError:
            return error_response(400, "body must be a JSON object")
        problem = _answer_problem(body)
        if problem is not None:
            return json_response(400, {"error": problem[1], "field": problem[0]})
        if body["order_id"] != order_id:
            return error_response(409, f"order_id {body['order_id']!r} is not the path's {order_id!r}")
        answer = Answer(order_id, body["result"], body["answered_at"], body["utility_id"])
        with self._lock:
            if order_id not in self._known:
                return error_response(404, f"no work order {order_id} was dispatched")
            duplicate = answer in self.answers
            self.answers.append(answer)
        return self.faults.lost_acknowledgement() or json_response(
            200, {"order_id": order_id, "recorded": True, "duplicate": duplicate}
        )


def _answer_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    """The field of an answer body that is wrong and why; None when it is right."""
    for key in ("order_id", "result", "answered_at", "utility_id"):
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            return key, f"{key} must be a non-empty string"
    if len(body["result"]) > _MAX_RESULT:
        return "result", f"result has more than {_MAX_RESULT} characters"
    try:
        datetime.fromisoformat(body["answered_at"])
    except ValueError:
        return "answered_at", "answered_at must be ISO 8601 or 'YYYY-MM-DD HH:MM:SS'"
    return None
