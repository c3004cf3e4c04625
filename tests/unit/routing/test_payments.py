"""爱山东 payments: parsing, amounts in fen, periods, channels, services, categories, the utility, repeats."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.aishandong.rules import load_application_rules
from routing.errors import DataError
from routing.payments import (
    MAX_AMOUNT_FEN,
    Payment,
    amount_fen,
    check_repeat,
    parse_payment,
    parse_period,
    utility_of,
    yuan,
)
from routing.service_areas import ServiceAreaTable, load_service_areas
from routing.user_category import shipped_categories
from schemas import Codec

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
INGESTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
WORDS = load_application_rules(CONFIG / "aishandong.yaml").vocabulary.service_names


def raw(**changes: Any) -> dict[str, Any]:
    payment: dict[str, Any] = {
        "jfbh": "JF20261125000001",
        "hh": "0102003456",
        "fwlx": "自来水",
        "xzqhdm": "370602",
        "je": "128.50",
        "zq": "2026-11",
        "qd": "微信",
        "jfr": "张伟",
        "jfsj": "2026-11-25 09:30:00",
        "yhlb": "居民用户",
    }
    payment.update(changes)
    return {k: v for k, v in payment.items() if v is not ...}


def parse(**changes: Any) -> Payment:
    return parse_payment(raw(**changes), ingested_at=INGESTED, service_names=WORDS, categories=shipped_categories())


def refusal(**changes: Any) -> DataError:
    with pytest.raises(DataError) as caught:
        parse(**changes)
    return caught.value


@pytest.fixture(scope="module")
def areas() -> ServiceAreaTable:
    return load_service_areas(CONFIG / "service-areas.yaml")


def test_a_payment_is_normalised() -> None:
    """Every field of the app's JSON lands in the record, money in fen and time in UTC."""
    payment = parse()
    assert payment == {
        "payment_id": "JF20261125000001",
        "account_no": "0102003456",
        "service": "WATER",
        "region_code": "370602",
        "amount_fen": 12850,
        "period": "2026-11",
        "channel": "WECHAT",
        "payer_name": "张伟",
        "paid_at": datetime(2026, 11, 25, 1, 30, tzinfo=UTC),
        "user_category": "RESIDENT",
        "source": "aishandong",
        "ingested_at": INGESTED,
    }


def test_a_payment_survives_avro() -> None:
    """The record encodes and decodes unchanged with the published schema."""
    codec = Codec.default()
    payment = parse()
    assert codec.decode_as("Payment", codec.encode("Payment", payment)) == payment


def test_optional_fields_may_be_absent() -> None:
    """Payer and category are optional; their absence is null, not an error."""
    payment = parse(jfr=..., yhlb=...)
    assert (payment["payer_name"], payment["user_category"]) == (None, None)


@pytest.mark.parametrize(
    ("value", "fen"),
    [("128.50", 12850), ("128.5", 12850), ("0.01", 1), ("3", 300), (3, 300), (128.55, 12855), (" 7.10 ", 710)],
)
def test_amounts_become_exact_fen(value: object, fen: int) -> None:
    """Yuan as text or JSON number become exact fen (a float's 128.55 is not 128.549…)."""
    assert amount_fen(value) == fen


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "positive"),
        ("0.00", "positive"),
        ("-5.00", "positive"),
        (-1, "positive"),
        ("1.005", "more than 2 decimals"),
        (0.001, "more than 2 decimals"),
        ("abc", "not an amount"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        (None, "number of yuan"),
        (True, "number of yuan"),
        ([1], "number of yuan"),
        ("1000000.01", "largest plausible"),
    ],
)
def test_bad_amounts_are_refused_with_reason(value: object, words: str) -> None:
    """Zero, negative, sub-fen, non-numeric and absurd amounts are DataErrors on je."""
    with pytest.raises(DataError) as caught:
        amount_fen(value)
    assert caught.value.field == "je"
    assert words in caught.value.reason


def test_the_largest_plausible_amount_passes() -> None:
    """The ceiling itself is accepted: the bound is inclusive."""
    assert amount_fen(yuan(MAX_AMOUNT_FEN)) == MAX_AMOUNT_FEN


@pytest.mark.parametrize(("fen", "text"), [(12850, "128.50"), (1, "0.01"), (300, "3.00")])
def test_yuan_prints_two_decimals(fen: int, text: str) -> None:
    """The utility receives yuan as a 2-decimal string."""
    assert yuan(fen) == text


@pytest.mark.parametrize(
    ("period", "words"),
    [
        ("2026/11", "YYYY-MM"),
        ("202611", "YYYY-MM"),
        ("2026-1", "YYYY-MM"),
        ("2026-13", "does not exist"),
        ("2026-00", "does not exist"),
        ("1999-12", "before 2000"),
        ("2027-12", "more than 12 months"),
    ],
)
def test_bad_periods_are_refused(period: str, words: str) -> None:
    """A period that is not a real month, too old or more than a year ahead is a DataError on zq."""
    error = refusal(zq=period)
    assert (error.field, words in error.reason) == ("zq", True)


@pytest.mark.parametrize("period", ["2026-11", "2020-01", "2027-11"])
def test_back_bills_and_prepayment_pass(period: str) -> None:
    """Arrears and up to a year of prepayment are ordinary bills."""
    assert parse(zq=period)["period"] == period


def test_period_is_read_in_the_payers_time_zone() -> None:
    """A payment at 00:30 Beijing time on 1 December is in December (UTC still says November)."""
    paid = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
    assert parse_period("2027-12", paid) == "2027-12"


@pytest.mark.parametrize(
    ("word", "channel"),
    [("微信", "WECHAT"), ("支付宝", "ALIPAY"), ("银联", "UNIONPAY"), ("云闪付", "UNIONPAY"), ("爱山东", "AISHANDONG")],
)
def test_channels(word: str, channel: str) -> None:
    """The channel's everyday words map to the four channels."""
    assert parse(qd=word)["channel"] == channel


def test_unknown_channel_is_refused() -> None:
    """A channel outside the four is a DataError on qd naming them."""
    error = refusal(qd="现金")
    assert (error.field, "微信" in error.reason) == ("qd", True)


@pytest.mark.parametrize(("word", "service"), [("燃气", "GAS"), ("供暖", "HEAT"), ("供水", "WATER")])
def test_services_use_the_forms_words(word: str, service: str) -> None:
    """The same words as an application's fwlx name the service."""
    assert parse(fwlx=word)["service"] == service


def test_unknown_service_is_refused() -> None:
    """A service word the form does not know is a DataError on fwlx."""
    assert refusal(fwlx="供油").field == "fwlx"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"jfbh": ...}, "jfbh"),
        ({"jfbh": "JF 1"}, "jfbh"),
        ({"jfbh": "x" * 65}, "jfbh"),
        ({"hh": ...}, "hh"),
        ({"hh": "12"}, "hh"),
        ({"hh": 102003456}, "hh"),
        ({"xzqhdm": "37060"}, "xzqhdm"),
        ({"xzqhdm": "999999"}, "xzqhdm"),
        ({"jfsj": "昨天"}, "jfsj"),
        ({"jfsj": "2026-11-25 11:00:00"}, "jfsj"),
        ({"jfr": 5}, "jfr"),
        ({"jfr": "张" * 101}, "jfr"),
        ({"yhlb": "游客"}, "yhlb"),
        ({"zfmm": "123456"}, "zfmm"),
        ({"qd": ...}, "qd"),
    ],
)
def test_bad_fields_name_the_apps_field(changes: dict[str, Any], field: str) -> None:
    """Missing, malformed, future-dated and unknown fields are DataErrors naming the app's field."""
    assert refusal(**changes).field == field


def test_reasons_never_quote_the_payer() -> None:
    """No refusal reason carries the payer's name."""
    for changes in ({"je": "-1"}, {"zq": "x"}, {"qd": "现金"}, {"fwlx": "供油"}):
        assert "张伟" not in refusal(**changes).reason


@pytest.mark.parametrize("word", ["企业用户", "个体工商户", "公服用户", "居民用户"])
def test_categories_are_carried(word: str) -> None:
    """The app's category words name one of 002's four categories."""
    expected = shipped_categories().of_words(word, "yhlb")
    assert parse(yhlb=word)["user_category"] == expected


def test_time_with_offset_is_accepted() -> None:
    """An ISO 8601 time with its offset is taken as given."""
    assert parse(jfsj="2026-11-25T01:30:00+00:00")["paid_at"] == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_the_utility_is_the_one_serving_the_service_there(areas: ServiceAreaTable) -> None:
    """Water and gas of the same division go to their own utilities."""
    water, gas = parse(), parse(fwlx="燃气")
    assert utility_of(water, areas) == areas.utility_for("370602", "WATER")
    assert utility_of(gas, areas) == areas.utility_for("370602", "GAS")
    assert utility_of(water, areas) != utility_of(gas, areas)


def test_no_utility_is_a_data_error(areas: ServiceAreaTable) -> None:
    """A division no utility serves for the service is a DataError, not a guess."""
    uncovered = parse(xzqhdm="110101")
    with pytest.raises(DataError) as caught:
        utility_of(uncovered, areas)
    assert caught.value.field == "xzqhdm"


def test_a_repeat_is_recognised_despite_its_arrival() -> None:
    """The same payment received again later (pushed twice) is a repeat, not a new payment."""
    first = parse()
    again = {**parse(), "ingested_at": datetime(2026, 11, 25, 3, 0, tzinfo=UTC), "source": "aishandong-pull"}
    assert check_repeat(None, first) is False
    assert check_repeat(first, Payment(**again)) is True  # type: ignore[typeddict-item]


def test_a_reused_id_with_other_content_is_refused() -> None:
    """One payment id for another amount or account is a DataError naming what differs."""
    with pytest.raises(DataError) as caught:
        check_repeat(parse(), parse(je="99.00", hh="0102009999"))
    assert caught.value.field == "jfbh"
    assert "account_no, amount_fen" in caught.value.reason


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_FEN))
def test_fen_survive_the_round_trip_through_yuan(fen: int) -> None:
    """Any amount the utility receives as yuan reads back as the same fen: money is never rounded."""
    assert amount_fen(yuan(fen)) == fen


@given(st.dictionaries(st.sampled_from(sorted(raw())), st.none() | st.text(max_size=12) | st.integers() | st.floats()))
def test_any_form_is_a_payment_or_a_data_error(changes: dict[str, Any]) -> None:
    """Whatever the app sends in its fields, validation answers with a payment or a DataError, nothing else."""
    try:
        payment = parse(**changes)
    except DataError as exc:
        assert exc.field in raw()
    else:
        assert payment["amount_fen"] > 0
