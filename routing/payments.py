"""爱山东 payments (缴费, seed 002): the app's JSON → ``Payment`` → the utility that keeps the account.

The 爱山东 platform sends one payment per bill paid::

    {"jfbh": "JF20261125000123", "hh": "0102003456", "fwlx": "自来水", "xzqhdm": "370602",
     "je": "128.50", "zq": "2026-11", "qd": "微信", "jfr": "张伟", "jfsj": "2026-11-25 09:30:00",
     "yhlb": "居民用户"}

``jfbh`` payment id, ``hh`` account number (户号), ``fwlx`` the service in the form's words (the same words
as an application's, :class:`~routing.aishandong.Vocabulary`), ``xzqhdm`` the account's division, ``je`` the
amount in yuan (a decimal string, or a JSON number, with at most 2 decimals), ``zq`` the billing period
(YYYY-MM), ``qd`` the channel (微信, 支付宝, 银联, 爱山东), ``jfr`` the payer (optional, personal data),
``jfsj`` when it was paid (Asia/Shanghai wall-clock time, or ISO 8601 with an offset), ``yhlb`` the user's
category (optional: 企业用户, 个体工商户, 居民用户, 公服用户).

Money is carried as integer fen (``amount_fen``): exact, summed without rounding by any consumer, and the same
in every language's Avro library; a decimal logical type would be bytes most tools show as garbage. The
utility receives yuan again as a decimal string (:func:`yuan`).

Every :class:`~routing.errors.DataError` names the app's field; none quotes the payer.

Example:
    >>> payment = parse_payment(raw, ingested_at=now, service_names=words, categories=shipped_categories())
    >>> utility_of(payment, areas), yuan(payment["amount_fen"])
    ('yantai-water', '128.50')
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, Literal, TypedDict
from zoneinfo import ZoneInfo

from routing.errors import DataError
from routing.identifiers import validate_region_code
from routing.records import Service, UserCategory
from routing.service_areas import ServiceAreaTable
from routing.user_category import CategoryTable

SOURCE: Final = "aishandong"
TIME_ZONE: Final = ZoneInfo("Asia/Shanghai")
PaymentChannel = Literal["WECHAT", "ALIPAY", "UNIONPAY", "AISHANDONG"]
CHANNELS: Final[Mapping[str, PaymentChannel]] = MappingProxyType(
    {
        "微信": "WECHAT",
        "微信支付": "WECHAT",
        "支付宝": "ALIPAY",
        "银联": "UNIONPAY",
        "云闪付": "UNIONPAY",
        "爱山东": "AISHANDONG",
        "WECHAT": "WECHAT",
        "ALIPAY": "ALIPAY",
        "UNIONPAY": "UNIONPAY",
        "AISHANDONG": "AISHANDONG",
    }
)
# One payment above this is a typing error (a bill of a million yuan), not a household or business bill.
MAX_AMOUNT_FEN: Final = 100_000_000
_FEN_PER_YUAN: Final = 100
_PAYMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9-]{4,32}$")
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
_FIRST_YEAR: Final = 2000
_MAX_NAME: Final = 100
_FIELDS: Final = frozenset({"jfbh", "hh", "fwlx", "xzqhdm", "je", "zq", "qd", "jfr", "jfsj", "yhlb"})


class Payment(TypedDict):
    """ubridge.v1.Payment."""

    payment_id: str
    account_no: str
    service: str
    region_code: str
    amount_fen: int
    period: str
    channel: PaymentChannel
    payer_name: str | None
    paid_at: datetime
    user_category: UserCategory | None
    source: str
    ingested_at: datetime


def parse_payment(
    raw: Mapping[str, Any],
    *,
    ingested_at: datetime,
    service_names: Mapping[str, Service],
    categories: CategoryTable,
) -> Payment:
    """Validate one payment in the app's format.

    Args:
        raw: The decoded JSON object.
        ingested_at: When ubridge received it (aware).
        service_names: The form's service words (``aishandong.yaml`` ``service_names``).
        categories: The user categories and their words.

    Raises:
        DataError: A field is missing, unknown or invalid; ``field`` is the app's own.
    """
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise DataError(unknown[0], f"unknown field (expected {', '.join(sorted(_FIELDS))})")
    paid_at = parse_paid_at(_text(raw, "jfsj"))
    if paid_at > ingested_at:
        raise DataError("jfsj", "paid after it was received (the sender's clock is ahead)")
    stated = _optional_text(raw, "yhlb")
    return Payment(
        payment_id=_matching(raw, "jfbh", _PAYMENT_ID, "letters, digits, '-' or '_', at most 64"),
        account_no=_matching(raw, "hh", _ACCOUNT, "4 to 32 letters, digits or '-'"),
        service=_service(_text(raw, "fwlx"), service_names),
        region_code=_region(_text(raw, "xzqhdm")),
        amount_fen=amount_fen(raw.get("je")),
        period=parse_period(_text(raw, "zq"), paid_at),
        channel=_channel(_text(raw, "qd")),
        payer_name=_payer(raw.get("jfr")),
        paid_at=paid_at,
        user_category=None if stated is None else categories.of_words(stated, "yhlb"),
        source=SOURCE,
        ingested_at=ingested_at,
    )


def amount_fen(value: object) -> int:
    """The amount in fen of a yuan amount (``"128.50"``, ``128.5``, ``128``).

    Raises:
        DataError: Not a number, zero or negative, more than 2 decimals, or implausibly large.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError("je", 'the amount must be a number of yuan, e.g. "128.50"')
    try:
        # repr of a float is its shortest round-tripping text: 128.55 stays 128.55, not 128.549999…
        yuan_amount = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation as exc:
        raise DataError("je", f"{str(value)[:20]!r} is not an amount of yuan") from exc
    if not yuan_amount.is_finite():
        raise DataError("je", "the amount must be finite")
    fen = yuan_amount * _FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise DataError("je", f"{yuan_amount} has more than 2 decimals (fen are the smallest unit)")
    if fen <= 0:
        raise DataError("je", f"the amount must be positive, not {yuan_amount}")
    if fen > MAX_AMOUNT_FEN:
        raise DataError("je", f"{yuan_amount} yuan exceeds the largest plausible bill ({yuan(MAX_AMOUNT_FEN)})")
    return int(fen)


def yuan(fen: int) -> str:
    """The decimal-string yuan amount of ``fen`` (``12850`` → ``"128.50"``)."""
    return str((Decimal(fen) / _FEN_PER_YUAN).quantize(Decimal("0.01")))


def parse_period(text: str, paid_at: datetime) -> str:
    """The billing period ``YYYY-MM``; a bill is paid in or after its period's month, never a year ahead.

    Raises:
        DataError: Not ``YYYY-MM``, an impossible month, before 2000, or more than 12 months after payment.
    """
    match = _PERIOD.match(text.strip())
    if match is None:
        raise DataError("zq", f"{text[:20]!r} is not a billing period YYYY-MM")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:  # noqa: PLR2004 - months
        raise DataError("zq", f"month {month:02d} does not exist")
    if year < _FIRST_YEAR:
        raise DataError("zq", f"period {year}-{month:02d} is before {_FIRST_YEAR}")
    local = paid_at.astimezone(TIME_ZONE)
    months_ahead = (year - local.year) * 12 + month - local.month
    if months_ahead > 12:  # noqa: PLR2004 - prepaying a year ahead is the most a utility bills
        raise DataError("zq", f"period {year}-{month:02d} is more than 12 months after the payment")
    return f"{year:04d}-{month:02d}"


def parse_paid_at(text: str) -> datetime:
    """When the payment was made: ``YYYY-MM-DD HH:MM:SS`` (Asia/Shanghai) or ISO 8601 with an offset.

    Raises:
        DataError: Neither form.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise DataError("jfsj", f"{text[:30]!r} is not a time (YYYY-MM-DD HH:MM:SS)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=TIME_ZONE)
    return moment.astimezone(UTC)


def utility_of(payment: Payment, areas: ServiceAreaTable) -> str:
    """The utility that keeps the account: the one serving the payment's service at its division.

    Raises:
        DataError: No utility serves that service there.
    """
    utility = areas.utility_for(payment["region_code"], payment["service"])
    if utility is None:
        reason = f"no utility serves {payment['service']} in {payment['region_code']} (service areas)"
        raise DataError("xzqhdm", reason)
    return utility


def same_payment(first: Payment, second: Payment) -> bool:
    """Whether two records of one payment id describe the same payment (a repeat), or clash.

    The arrival fields (``ingested_at``, ``source``) may differ between a push and its repeat.
    """
    return _content(first) == _content(second)


def check_repeat(previous: Payment | None, payment: Payment) -> bool:
    """True when ``payment`` repeats ``previous`` (nothing to do again), False when it is new.

    Raises:
        DataError: The id was used before for another payment (other account, amount, period…).
    """
    if previous is None:
        return False
    if same_payment(previous, payment):
        return True
    changed = sorted(k for k, v in _content(payment).items() if _content(previous)[k] != v)
    raise DataError("jfbh", f"payment id used before for another payment (differs in {', '.join(changed)})")


def _content(payment: Payment) -> dict[str, object]:
    return {k: v for k, v in payment.items() if k not in ("ingested_at", "source")}


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(name, "missing")
    if not isinstance(value, str):
        raise DataError(name, f"must be a string, not {type(value).__name__}")
    return value


def _optional_text(raw: Mapping[str, Any], name: str) -> str | None:
    return None if raw.get(name) is None or raw.get(name) == "" else _text(raw, name)


def _matching(raw: Mapping[str, Any], name: str, pattern: re.Pattern[str], shape: str) -> str:
    text = _text(raw, name).strip()
    if not pattern.match(text):
        raise DataError(name, f"{text[:20]!r} is not valid ({shape})")
    return text


def _service(words: str, service_names: Mapping[str, Service]) -> str:
    service = service_names.get(words.strip())
    if service is None:
        known = "、".join(sorted(service_names))
        raise DataError("fwlx", f"{words[:20]!r} is not a service the form knows ({known})")
    return service


def _region(code: str) -> str:
    validate_region_code(code.strip(), "xzqhdm")
    return code.strip()


def _channel(words: str) -> PaymentChannel:
    channel = CHANNELS.get(words.strip())
    if channel is None:
        raise DataError("qd", f"{words[:20]!r} is not a payment channel (微信, 支付宝, 银联, 爱山东)")
    return channel


def _payer(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DataError("jfr", f"must be a string, not {type(value).__name__}")
    if len(value) > _MAX_NAME:
        raise DataError("jfr", f"longer than {_MAX_NAME} characters")
    return value.strip()
