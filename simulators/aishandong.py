"""The 爱山东 platform's side of the application gateway: realistic applications, pushed signed.

The contract of ``POST /v1/applications`` (standard library only, like any outside sender):

- Body: one application, a JSON object in the gateway format (``sqbh``, ``sqlx``, ``fwlx``, ``sqrlx``,
  ``sqrxm``, ``sfzhm`` / ``tyshxydm``, ``lxdh``, ``xmdm``, ``xzqhdm``, ``dz``, ``sqsj``, ``cl``, ``bz``), encoded
  in the declared charset: ``Content-Type: application/json; charset=UTF-8`` or ``charset=GBK``.
- ``X-Ubridge-Timestamp: <unix seconds>`` and
  ``X-Ubridge-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body bytes)>``, signed afresh
  for every attempt.
- 202 ``{"accepted": 1, "application_id": …}``: durable. 4xx ``{"error": …, "field": …}``: refused, nothing
  stored. 503 with ``Retry-After``: try again.

Example:
    >>> apps = make_applications(20, seed=3, regions=["370602", "370102"])
    >>> results = push_applications(f"{url}/v1/applications", "s3cret", apps, charset="gbk")
    >>> {r.status for r in results}
    {202}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
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

try:
    from simulators.approval.push import sign
except ImportError:  # pragma: no cover - the approval simulator ships alongside

    def sign(secret: str, timestamp: int, body: bytes) -> str:
        """The ``X-Ubridge-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``."""
        digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
        return f"sha256={digest}"


APPLICATIONS_PATH = "/v1/applications"
FEED_PATH = "/api/v1/applications"
CHARSETS = {"utf-8": "UTF-8", "gbk": "GBK"}  # codec name -> the name declared in Content-Type

_KINDS = (("报装", 70), ("报修", 15), ("报停", 8), ("过户", 7))
_SERVICES = ("供水", "供气", "供热")
# The everyday words builders type for each service and applicant (ubridge reads them from aishandong.yaml).
_SERVICE_WORDS = {
    "供水": ("供水", "自来水", "用水"),
    "供气": ("供气", "燃气", "天然气"),
    "供热": ("供热", "供暖", "采暖"),
}
_PERSON_WORDS = ("个人", "居民")
_ORGANISATION_WORDS = ("企业", "法人", "个体工商户", "公服")
_BAD_LINK_EVERY = 17  # one application in this many carries an unusable material link (容缺受理: still accepted)
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超")
_COMPANIES = ("幸福置业有限公司", "海岸建设集团有限公司", "鲁东物业管理有限公司", "泉城餐饮有限公司")
_STREETS = ("幸福南路", "解放路", "经十路", "东昌路", "滨海路", "黄河大街")
# Counties whose codes GB/T 2260 has listed since before 1984 (younger codes would not match an older birth).
_BIRTH_PLACES = ("370602", "370611", "370102", "370105", "370202", "370203", "110101", "310104")
_PERMIT_PREFIXES = ("810000", "820000", "830000")  # Hong Kong, Macao, Taiwan residence permits
_MOBILE_PREFIXES = ("139", "138", "137", "136", "135", "150", "151", "158", "186", "187", "177", "199", "166")
_MATERIALS = (
    ("许可证", "建设工程规划许可证"),
    ("图纸", "总平面图"),
    ("产权证明", "不动产权证书"),
    ("营业执照", "营业执照"),
)
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class PushResult:
    """The answer to one pushed application."""

    status: int
    body: dict[str, Any]


def id_check_character(body: str) -> str:
    """The GB 11643 check character of the first 17 digits of an ID number."""
    total = sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def make_id_number(rng: random.Random, *, permit: bool = False) -> str:
    """A valid 18-character ID number (GB 11643); ``permit``: a Hong Kong/Macao/Taiwan residence permit."""
    place = rng.choice(_PERMIT_PREFIXES if permit else _BIRTH_PLACES)
    birth = date(1984, 1, 1) + timedelta(days=rng.randrange(365 * 22))
    body = f"{place}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return body + id_check_character(body)


def make_mobile(rng: random.Random) -> str:
    """A valid mainland mobile number."""
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def make_uscc(rng: random.Random, region: str) -> str:
    """A valid 统一社会信用代码 (GB 32100) registered in ``region``."""
    organisation = f"{rng.randrange(10**8):08d}"
    total = sum(int(c) * w for c, w in zip(organisation, _ORG_WEIGHTS, strict=True))
    organisation += "0123456789X"[(11 - total % 11) % 11]
    body = f"91{region}{organisation}"
    weighted = sum(_USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body))
    return body + _USCC_ALPHABET[(31 - weighted % 31) % 31]


def make_applications(
    n: int,
    seed: int,
    regions: Sequence[str],
    *,
    project_codes: Sequence[str] = (),
    start: datetime | None = None,
) -> list[dict[str, Any]]:
    """``n`` realistic applications in the gateway format, reproducible from ``seed``.

    Mostly 报装, some 报修/报停/过户; 1-3 services each (套餐式 when several), in everyday words (供暖, 自来水,
    天然气…); about one in eight applicants is an organisation (企业, 法人, 个体工商户, 公服) and a few persons
    hold 81/82/83 residence permits; about a third cite one of ``project_codes``; at most one material each,
    and one application in 17 with a material its link makes unusable. ``sqsj`` runs from ``start``
    (Asia/Shanghai, naive) on.
    """
    rng = random.Random(seed)
    moment = start or datetime(2026, 11, 23, 9, 0)  # noqa: DTZ001 - the gateway's local wall-clock time
    kinds = [k for k, _ in _KINDS]
    weights = [w for _, w in _KINDS]
    apps = []
    for index in range(n):
        region = rng.choice(regions)
        enterprise = rng.random() < 0.125  # noqa: PLR2004 - a share
        services = rng.sample(_SERVICES, rng.choice((1, 1, 2, 3)))
        moment += timedelta(minutes=rng.randrange(1, 40))
        app: dict[str, Any] = {
            "sqbh": f"AS{moment:%Y%m%d}{seed % 1000:03d}{index:06d}",
            "sqlx": rng.choices(kinds, weights)[0],
            "fwlx": [_SERVICE_WORDS[s][(index + n) % 3] for n, s in enumerate(_SERVICES) if s in services],
            "sqrlx": _word(_ORGANISATION_WORDS if enterprise else _PERSON_WORDS, index),
            "sqrxm": rng.choice(_COMPANIES) if enterprise else rng.choice(_SURNAMES) + rng.choice(_GIVEN),
            "lxdh": make_mobile(rng),
            "xzqhdm": region,
            "dz": f"{rng.choice(_STREETS)}{rng.randrange(1, 300)}号",
            "sqsj": f"{moment:%Y-%m-%d %H:%M:%S}",
            "cl": [],
            "bz": None,
        }
        if enterprise:
            app["tyshxydm"] = make_uscc(rng, region)
        else:
            app["sfzhm"] = make_id_number(rng, permit=rng.random() < 0.05)  # noqa: PLR2004 - a share
        if project_codes and rng.random() < 1 / 3:
            app["xmdm"] = rng.choice(project_codes)
        if rng.random() < 0.5:  # noqa: PLR2004 - a share
            kind, title = rng.choice(_MATERIALS)
            digest = hashlib.sha256(f"{app['sqbh']}:{title}".encode()).hexdigest()
            app["cl"] = [
                {
                    "lx": kind,
                    "bh": f"CL-{index:06d}",
                    "mc": title,
                    "url": f"https://zwfw.sd.gov.cn/cl/{digest[:16]}",
                    "sha256": digest,
                }
            ]
            if index % _BAD_LINK_EVERY == 0:
                app["cl"][0]["url"] = f"ftp://zwfw.sd.gov.cn/cl/{digest[:16]}"
        apps.append(app)
    return apps


def _word(words: Sequence[str], index: int) -> str:
    """One of ``words``, in turn (no draw, so the seeded sequence of everything else is unchanged)."""
    return words[index % len(words)]


def push_applications(
    url: str,
    secret: str,
    apps: Sequence[dict[str, Any]],
    *,
    charset: str = "utf-8",
    timeout_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> list[PushResult]:
    """POST each application to ``url`` (the full ``…/v1/applications`` URL), signed, in ``charset``.

    Raises:
        ValueError: an unknown charset.
        OSError: the gateway could not be reached.
    """
    if charset not in CHARSETS:
        message = f"charset must be one of {sorted(CHARSETS)}"
        raise ValueError(message)
    results = []
    for app in apps:
        body = json.dumps(app, ensure_ascii=False).encode(charset)
        stamp = int(clock())
        headers = {
            "Content-Type": f"application/json; charset={CHARSETS[charset]}",
            "X-Ubridge-Timestamp": str(stamp),
            "X-Ubridge-Signature": sign(secret, stamp, body),
        }
        results.append(_post(url, body, headers, timeout_s))
    return results


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> PushResult:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - see above
            return PushResult(response.status, _json(response.read()))
    except urllib.error.HTTPError as exc:
        with exc:
            return PushResult(exc.code, _json(exc.read()))


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {"error": body.decode(errors="replace")}
    return payload if isinstance(payload, dict) else {"body": payload}


class ApplicationFeed:
    """The 爱山东 gateway's pull feed, for platforms that cannot push: ``GET /api/v1/applications``.

    ``?cursor=N&limit=M`` with ``Authorization: Bearer <token>`` answers ``{"applications": [...with seq > N...],
    "next_cursor": <last seq or N>, "has_more": bool}``; 401 on a bad token.
    """

    def __init__(self, *, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._http = JsonHttpServer(self._handle, host=host, port=port)

    def start(self) -> str:
        """Start serving; the base URL."""
        return self._http.start()

    def stop(self) -> None:
        """Stop serving."""
        self._http.stop()

    def add(self, applications: Sequence[dict[str, Any]]) -> None:
        """Publish applications on the feed, each given the next ``seq``."""
        with self._lock:
            for app in applications:
                self._entries.append({**app, "seq": len(self._entries) + 1})

    def _handle(self, request: Request) -> Response:
        if (request.method, request.path) != ("GET", FEED_PATH):
            return error_response(404, f"no such resource: {request.path}")
        if not request.bearer_matches(self._token):
            return unauthorized()
        try:
            cursor = int(request.query.get("cursor", "0"))
            limit = max(1, min(500, int(request.query.get("limit", "100"))))
        except ValueError:
            return error_response(400, "cursor and limit must be integers")
        with self._lock:
            page = [e for e in self._entries if e["seq"] > cursor][:limit]
            more = bool(page) and page[-1]["seq"] < len(self._entries)
        next_cursor = page[-1]["seq"] if page else cursor
        return json_response(200, {"applications": page, "next_cursor": next_cursor, "has_more": more})


# Payments (缴费, 002's "报装、缴费、报修、报停"): the app collects a bill and tells ubridge, which posts it at the
# utility and sends the utility's receipt (入账回执) back here.
PAYMENTS_PATH = "/v1/payments"
PAYMENT_FEED_PATH = "/api/v1/payments"
RECEIPTS_PATH = "/v1/payment-receipts"
_CHANNEL_WORDS = (("微信", 45), ("支付宝", 35), ("银联", 10), ("爱山东", 10))
_CATEGORY_WORDS = ("居民用户", "企业用户", "个体工商户", "公服用户")


def make_payments(n: int, seed: int, regions: Sequence[str], *, start: datetime | None = None) -> list[dict[str, Any]]:
    """``n`` realistic payments in the app's format (:mod:`routing.payments`), reproducible from ``seed``.

    Each pays one month's bill (this month or last, in yuan with fen) of one service, mostly through 微信 and
    支付宝; about two in three carry the user's category (``yhlb``). ``jfsj`` runs from ``start`` on.
    """
    rng = random.Random(seed)
    moment = start or datetime(2026, 11, 23, 9, 0)  # noqa: DTZ001 - the app's local wall-clock time
    channels = [c for c, _ in _CHANNEL_WORDS]
    weights = [w for _, w in _CHANNEL_WORDS]
    payments = []
    for index in range(n):
        service = rng.choice(_SERVICES)
        moment += timedelta(minutes=rng.randrange(1, 20))
        period = moment.replace(day=1) - timedelta(days=rng.choice((0, 1)))
        payment: dict[str, Any] = {
            "jfbh": f"JF{moment:%Y%m%d}{seed % 1000:03d}{index:06d}",
            "hh": f"{rng.randrange(10**9):010d}",
            "fwlx": _SERVICE_WORDS[service][index % 3],
            "xzqhdm": rng.choice(regions),
            "je": f"{rng.randrange(500, 60000) / 100:.2f}",
            "zq": f"{period:%Y-%m}",
            "qd": rng.choices(channels, weights)[0],
            "jfr": rng.choice(_SURNAMES) + rng.choice(_GIVEN),
            "jfsj": f"{moment:%Y-%m-%d %H:%M:%S}",
        }
        if rng.random() < 2 / 3:
            payment["yhlb"] = rng.choice(_CATEGORY_WORDS)
        payments.append(payment)
    return payments


def push_payments(
    url: str,
    secret: str,
    payments: Sequence[dict[str, Any]],
    *,
    charset: str = "utf-8",
    timeout_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> list[PushResult]:
    """POST each payment to ``url`` (the full ``…/v1/payments`` URL), signed like an application.

    A payment sent again must be signed at another second (``clock``): the same body and time make the same
    signature, which the gateway refuses as a replay.

    Answers: 202 ``{"accepted": 1, "payment_id": …}`` durable; 422 ``{"error", "field"}`` refused.

    Raises:
        ValueError: an unknown charset.
        OSError: the gateway could not be reached.
    """
    return push_applications(url, secret, payments, charset=charset, timeout_s=timeout_s, clock=clock)


@dataclass(frozen=True)
class Receipt:
    """A utility's receipt (入账回执) for one payment, as ubridge reported it back to the app."""

    payment_id: str
    utility_id: str
    receipt_no: str
    body: dict[str, Any]


class PaymentPlatform:
    """The app's payment side: a pull feed of payments and the endpoint taking receipts back from ubridge.

    - ``GET /api/v1/payments?cursor=N&limit=M`` (bearer ``token``): ``{"payments": [...with seq > N...],
      "next_cursor", "has_more"}``, like the application feed.
    - ``POST /v1/payment-receipts`` (bearer ``token``), body ``{"payment_id", "utility_id", "receipt_no",
      "posted_at", …}``: 201 ``{"status": "recorded"}``; the same receipt again 200 ``{"status": "duplicate"}``;
      another receipt for a payment already receipted 409; 400 on a body without those fields; 401 on a bad
      token. Faults (:meth:`set_faults`, the keywords of the utility simulator's) strike before recording;
      ``fail_after_store_rate`` records and answers 503.
    """

    def __init__(self, *, token: str, host: str = "127.0.0.1", port: int = 0, seed: int = 5) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._receipts: dict[str, Receipt] = {}
        self.requests = 0
        self.repeats = 0
        self._faults = FaultPlan(seed)
        self._http = JsonHttpServer(self._handle, host=host, port=port)

    def start(self) -> str:
        """Start serving; the base URL."""
        return self._http.start()

    def stop(self) -> None:
        """Stop serving."""
        self._http.stop()

    def add(self, payments: Sequence[dict[str, Any]]) -> None:
        """Publish payments on the feed, each given the next ``seq``."""
        with self._lock:
            for payment in payments:
                self._entries.append({**payment, "seq": len(self._entries) + 1})

    def set_faults(self, **plan: Any) -> None:
        """Replace the fault plan of the receipt endpoint; no arguments clears it."""
        self._faults.configure(**plan)

    def receipts(self) -> list[Receipt]:
        """The receipts recorded, in order."""
        with self._lock:
            return list(self._receipts.values())

    def _handle(self, request: Request) -> Response:
        if (request.method, request.path) == ("POST", RECEIPTS_PATH):
            return self._receipt(request)
        if (request.method, request.path) != ("GET", PAYMENT_FEED_PATH):
            return error_response(404, f"no such resource: {request.path}")
        if not request.bearer_matches(self._token):
            return unauthorized()
        try:
            cursor = int(request.query.get("cursor", "0"))
            limit = max(1, min(500, int(request.query.get("limit", "100"))))
        except ValueError:
            return error_response(400, "cursor and limit must be integers")
        with self._lock:
            page = [e for e in self._entries if e["seq"] > cursor][:limit]
            more = bool(page) and page[-1]["seq"] < len(self._entries)
        next_cursor = page[-1]["seq"] if page else cursor
        return json_response(200, {"payments": page, "next_cursor": next_cursor, "has_more": more})

    def _receipt(self, request: Request) -> Response:
        with self._lock:
            self.requests += 1
        refusal = self._faults.intercept()
        if refusal is None and not request.bearer_matches(self._token):
            refusal = unauthorized()
        if refusal is not None:
            return refusal
        try:
            body = request.json_object()
        except ValueError:
            return error_response(400, "the body is not a JSON object")
        if not all(isinstance(body.get(k), str) and body[k] for k in ("payment_id", "utility_id", "receipt_no")):
            return error_response(400, "payment_id, utility_id and receipt_no are required")
        receipt = Receipt(body["payment_id"], body["utility_id"], body["receipt_no"], body)
        with self._lock:
            held = self._receipts.get(receipt.payment_id)
            if held is not None and (held.utility_id, held.receipt_no) != (receipt.utility_id, receipt.receipt_no):
                return error_response(409, "this payment already has another receipt")
            if held is None:
                self._receipts[receipt.payment_id] = receipt
            else:
                self.repeats += 1
        lost = self._faults.lost_acknowledgement()
        if lost is not None:
            return lost
        return json_response(201 if held is None else 200, {"status": "recorded" if held is None else "duplicate"})
