"""Pushing project events to a ubridge webhook, the way an approval system's push interface does.

The contract of ``POST /v1/project-events`` (standard library only, like any outside sender):

- Body: ``{"events": [...]}`` (or one event object), JSON encoded in the declared charset:
  ``Content-Type: application/json; charset=UTF-8`` or ``charset=GBK``.
- ``X-Ubridge-Timestamp: <unix seconds>`` and
  ``X-Ubridge-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body bytes)>``. The receiver
  refuses a timestamp more than its replay window (default 300 s) away from its clock, and a signature it has
  already seen; every attempt is therefore signed afresh.
- 202 ``{"accepted": n}``: the events are durable. 4xx ``{"error": ..., "field": ...}``: nothing was taken
  (fix and resend the batch). 503 with ``Retry-After``: try again later.

Events are generated in the ``default`` vendor format (`EventGenerator`); `to_vendor` renders one in the
format of another vendor's approval system (``yantai``: flat camelCase, epoch milliseconds, codes;
``liaocheng``: nested with Chinese keys, ``yyyyMMddHHmmss``, hectares and yuan).

Example:
    >>> events = EventGenerator(seed=7).generate(120)
    >>> results = push_events(f"{url}{PUSH_PATH}", "s3cret", events, charset="gbk", vendor="liaocheng")
    >>> [r.status for r in results]
    [202, 202, 202]
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulators.approval.generator import BLSJ_FORMAT, SHANGHAI

PUSH_PATH = "/v1/project-events"
VENDORS = ("default", "yantai", "liaocheng")
CHARSETS = {"utf-8": "UTF-8", "gbk": "GBK"}  # codec name -> the name declared in Content-Type

_YANTAI_STATUS = {1: "01", 2: "02", 3: "03", 11: "09", 13: "10"}
_YANTAI_SERVICE = {"供水": "WS", "供气": "GS", "供热": "HS"}
_YANTAI_NATURE = {"新建": "NEW", "改建": "REBUILD", "扩建": "EXPAND"}
_LIAOCHENG_STATUS = {1: "受理", 2: "审查中", 3: "补正", 11: "办结", 13: "不予许可"}
_LIAOCHENG_SERVICE = {"供水": "自来水", "供气": "天然气", "供热": "集中供热"}
_LIAOCHENG_DOCUMENT = {"PERMIT": "许可证", "APPROVAL": "批文", "DRAWING": "图纸", "OTHER": "其他"}


@dataclass(frozen=True)
class PushResult:
    """The answer to one pushed batch."""

    status: int
    body: dict[str, Any]
    events: int


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ubridge-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, *, charset: str = "utf-8", timestamp: int | None = None) -> dict[str, str]:
    """The headers of one push: content type with charset, timestamp and signature."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": f"application/json; charset={CHARSETS[charset]}",
        "X-Ubridge-Timestamp": str(stamp),
        "X-Ubridge-Signature": sign(secret, stamp, body),
    }


def push_events(
    url: str,
    secret: str,
    events: Sequence[dict[str, Any]],
    *,
    charset: str = "utf-8",
    batch: int = 50,
    vendor: str = "default",
    timeout_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> list[PushResult]:
    """Push ``events`` (default format) to ``url`` in batches, rendered as ``vendor`` and encoded in ``charset``.

    Args:
        url: the webhook's full URL, e.g. ``http://127.0.0.1:8090/v1/project-events``.
        secret: the shared HMAC secret.
        events: the events, in the default format (as the generator makes them).
        charset: ``"utf-8"`` or ``"gbk"``.
        batch: events per request.
        vendor: one of `VENDORS`.
        timeout_s: per request.
        clock: unix time, for the timestamp (tests move it).

    Returns:
        One result per batch, in order; a refused batch does not stop the next.

    Raises:
        ValueError: unknown charset or vendor, or a batch size below 1.
        OSError: the webhook could not be reached.
    """
    if charset not in CHARSETS or vendor not in VENDORS or batch < 1:
        message = f"charset must be one of {sorted(CHARSETS)}, vendor one of {VENDORS}, batch >= 1"
        raise ValueError(message)
    results = []
    for start in range(0, len(events), batch):
        chunk = [to_vendor(event, vendor) for event in events[start : start + batch]]
        body = json.dumps({"events": chunk}, ensure_ascii=False).encode(charset)
        headers = signed_headers(secret, body, charset=charset, timestamp=int(clock()))
        results.append(_post(url, body, headers, timeout_s, len(chunk)))
    return results


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float, count: int) -> PushResult:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - see above
            return PushResult(response.status, _json(response.read()), count)
    except urllib.error.HTTPError as exc:
        with exc:
            return PushResult(exc.code, _json(exc.read()), count)


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {"error": body.decode(errors="replace")}
    return payload if isinstance(payload, dict) else {"body": payload}


def to_vendor(event: dict[str, Any], vendor: str) -> dict[str, Any]:
    """Render a default-format event as ``vendor``'s approval system sends it.

    Fields the event lacks are left out, and values that cannot be converted (a defective time, an unknown
    code) are passed on as they are, so a defective event stays defective in every format.

    Raises:
        ValueError: an unknown vendor.
    """
    if vendor == "default":
        return copy.deepcopy(event)
    if vendor == "yantai":
        return _yantai(event)
    if vendor == "liaocheng":
        return _liaocheng(event)
    message = f"unknown vendor {vendor!r}; choose from {VENDORS}"
    raise ValueError(message)


def _yantai(event: dict[str, Any]) -> dict[str, Any]:
    names = {
        "seq": "eventId", "xmdm": "projectCode", "xmmc": "projectName", "jsdd": "siteAddress",
        "jsddxzqh": "regionCode", "jsdw": "builderName", "jsdwdm": "builderCreditCode", "ztze": "totalInvestment",
        "ydmj": "landArea", "jzmj": "floorArea", "spsxbm": "itemCode", "spsxslbm": "itemInstanceCode",
        "spsxmc": "itemName", "dybzspjdxh": "stageNo", "lxr": "contactName", "lxrsjh": "contactPhone",
    }  # fmt: skip
    out = {name: event[key] for key, name in names.items() if key in event}
    if "jsxz" in event:
        out["nature"] = _YANTAI_NATURE.get(event["jsxz"], event["jsxz"])
    if "blzt" in event:
        out["statusCode"] = _YANTAI_STATUS.get(event["blzt"], event["blzt"])
    if "blsj" in event:
        moment = _local_time(event["blsj"])
        out["handleTime"] = event["blsj"] if moment is None else int(moment.timestamp() * 1000)
    if "sjyxbs" in event:
        out["deleted"] = event["sjyxbs"] == 0
    if "xqxx" in event:
        out["demands"] = [
            _renamed(d, {"gj_mm": "pipeDn", "yl": "quantity", "yldw": "unit", "grmj": "heatingArea"})
            | ({"serviceCode": _YANTAI_SERVICE.get(d["fwlx"], d["fwlx"])} if "fwlx" in d else {})
            for d in event["xqxx"]
        ]
    if "fjxx" in event:
        names = {"wjlx": "type", "wjbh": "no", "wjmc": "name", "xzdz": "url", "sha256": "sha256"}
        out["attachments"] = [_renamed(document, names) for document in event["fjxx"]]
    return out


def _liaocheng(event: dict[str, Any]) -> dict[str, Any]:
    project = _renamed(
        event,
        {
            "xmdm": "代码",
            "xmmc": "名称",
            "jsdd": "地址",
            "jsddxzqh": "行政区划",
            "jsxz": "性质",
            "jzmj": "建筑面积平方米",
        },
    )
    if "ztze" in event:
        project["总投资元"] = round(event["ztze"] * 10_000, 2)
    if "ydmj" in event:
        project["用地面积公顷"] = event["ydmj"] / 10_000
    builder = _renamed(event, {"jsdw": "名称", "jsdwdm": "统一社会信用代码"})
    if builder:
        project["建设单位"] = builder
    approval: dict[str, Any] = {}
    if "dybzspjdxh" in event:
        approval["阶段"] = str(event["dybzspjdxh"])
    item = _renamed(event, {"spsxbm": "编码", "spsxslbm": "实例编码", "spsxmc": "名称"})
    if item:
        approval["事项"] = item
    record: dict[str, Any] = {}
    if "blzt" in event:
        record["状态"] = _LIAOCHENG_STATUS.get(event["blzt"], event["blzt"])
    if "blsj" in event:
        moment = _local_time(event["blsj"])
        record["时间"] = event["blsj"] if moment is None else f"{moment:%Y%m%d%H%M%S}"
    approval["办理记录"] = [record]
    contact = _renamed(event, {"lxr": "姓名", "lxrsjh": "手机"})
    if contact:
        approval["联系人"] = contact
    out: dict[str, Any] = {"serial": event["seq"]} if "seq" in event else {}
    out |= {"project": project, "approval": approval}
    if "sjyxbs" in event:
        out["valid"] = "N" if event["sjyxbs"] == 0 else "Y"
    if "xqxx" in event:
        names = {"gj_mm": "管径DN", "yl": "用量", "yldw": "单位", "grmj": "供热面积"}
        out["demands"] = [
            _renamed(d, names) | ({"类型": _LIAOCHENG_SERVICE.get(d["fwlx"], d["fwlx"])} if "fwlx" in d else {})
            for d in event["xqxx"]
        ]
    if "fjxx" in event:
        names = {"wjbh": "文号", "wjmc": "名称", "xzdz": "下载地址", "sha256": "SHA256"}
        out["attachments"] = [
            _renamed(d, names) | ({"类别": _LIAOCHENG_DOCUMENT.get(d["wjlx"], d["wjlx"])} if "wjlx" in d else {})
            for d in event["fjxx"]
        ]
    return out


def _renamed(source: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {name: source[key] for key, name in names.items() if key in source}


def _local_time(text: object) -> datetime | None:
    """A ``blsj`` text as an Asia/Shanghai time; None when it is not one (a defective event)."""
    try:
        return datetime.strptime(str(text), BLSJ_FORMAT).replace(tzinfo=SHANGHAI)
    except ValueError:
        return None
