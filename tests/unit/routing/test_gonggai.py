import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import load_schema
from hypothesis import given
from hypothesis import strategies as st

from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ProjectEvent

SCHEMAS = Path(__file__).parents[3] / "schemas"
INGESTED = datetime(2026, 11, 25, 3, 0, 5, tzinfo=UTC)
USCC = "91370602MA3C0X1P4G"
DIGEST = "ab" * 32
RAW: dict[str, Any] = {
    "seq": 17,
    "xmdm": "2026-370602-47-01-000123",
    "xmmc": "芝罘区幸福里住宅小区三期",
    "jsdd": "山东省烟台市芝罘区幸福南路18号",
    "jsddxzqh": "370602",
    "jsdw": "烟台市幸福置业有限公司",
    "jsdwdm": USCC,
    "jsxz": "新建",
    "ztze": 12000.0,
    "ydmj": 23000.5,
    "jzmj": 56000.0,
    "spsxbm": "370600-GH-001",
    "spsxslbm": "370600-GH-001-2026-0042",
    "spsxmc": "建设工程规划许可证核发",
    "dybzspjdxh": 2,
    "blzt": 11,
    "blsj": "2026-11-25 10:31:00",
    "lxr": "张伟",
    "lxrsjh": "13912345678",
    "xqxx": [
        {"fwlx": "供水", "gj_mm": 100, "yl": 300.0, "yldw": "m3/d"},
        {"fwlx": "供气", "yl": 60.0, "yldw": "m3/h"},
        {"fwlx": "供热", "grmj": 48000.0},
    ],
    "fjxx": [
        {
            "wjlx": "PERMIT",
            "wjbh": "建字第370602202600123号",
            "wjmc": "建设工程规划许可证",
            "xzdz": "https://gcjs.example.gov.cn/files/abc.pdf",
            "sha256": DIGEST,
        }
    ],
    "sjyxbs": 1,
}


def raw(**changes: Any) -> dict[str, Any]:
    """RAW with some keys changed; a value of ``...`` removes the key."""
    record = {**RAW, **changes}
    return {key: value for key, value in record.items() if value is not ...}


def norm(record: dict[str, Any], **kwargs: Any) -> ProjectEvent:
    """Normalise with the test's source and ingestion time."""
    return normalise(record, source="gonggai-interface", ingested_at=INGESTED, **kwargs)


def error_of(record: Any) -> tuple[str, str]:
    """The (field, reason) of the DataError normalising ``record`` raises."""
    with pytest.raises(DataError) as caught:
        norm(record)
    return caught.value.field, caught.value.reason


def test_full_record_maps_to_the_canonical_event() -> None:
    """Every raw field lands in its canonical field, converted and validated."""
    expected: ProjectEvent = {
        "event_id": norm(RAW)["event_id"],
        "source": "gonggai-interface",
        "source_record_id": "17",
        "project_code": "2026-370602-47-01-000123",
        "project_name": "芝罘区幸福里住宅小区三期",
        "region_code": "370602",
        "site_address": "山东省烟台市芝罘区幸福南路18号",
        "builder_name": "烟台市幸福置业有限公司",
        "builder_uscc": USCC,
        "contact_name": "张伟",
        "contact_mobile": "13912345678",
        "stage": 2,
        "item_code": "370600-GH-001",
        "item_instance_code": "370600-GH-001-2026-0042",
        "item_name": "建设工程规划许可证核发",
        "item_status": "GRANTED",
        "retraction": False,
        "occurred_at": datetime(2026, 11, 25, 2, 31, tzinfo=UTC),
        "ingested_at": INGESTED,
        "time_zone": "Asia/Shanghai",
        "project_nature": "新建",
        "floor_area_m2": 56000.0,
        "land_area_m2": 23000.5,
        "investment_10k_cny": 12000.0,
        "demands": [
            {
                "service": "WATER",
                "pipe_diameter_mm": 100,
                "load": 300.0,
                "load_unit": "m3/d",
                "heated_area_m2": None,
            },
            {
                "service": "GAS",
                "pipe_diameter_mm": None,
                "load": 60.0,
                "load_unit": "m3/h",
                "heated_area_m2": None,
            },
            {
                "service": "HEAT",
                "pipe_diameter_mm": None,
                "load": None,
                "load_unit": None,
                "heated_area_m2": 48000.0,
            },
        ],
        "documents": [
            {
                "kind": "PERMIT",
                "number": "建字第370602202600123号",
                "title": "建设工程规划许可证",
                "url": "https://gcjs.example.gov.cn/files/abc.pdf",
                "digest": f"sha256:{DIGEST}",
            }
        ],
        "flags": [],
        "repairs": [],
    }
    assert expected == norm(RAW)


def test_minimal_record_leaves_optional_fields_empty() -> None:
    """Only the required fields given: optional ones are None, demands and documents empty."""
    record = {key: RAW[key] for key in ("seq", "xmdm", "xmmc", "jsddxzqh", "jsdw", "dybzspjdxh", "blzt", "blsj")}
    unset = (
        "builder_uscc",
        "contact_name",
        "contact_mobile",
        "item_code",
        "item_instance_code",
        "item_name",
        "project_nature",
        "floor_area_m2",
        "land_area_m2",
        "investment_10k_cny",
    )
    expected = {**norm(RAW), **dict.fromkeys(unset), "site_address": "", "demands": [], "documents": []}
    assert expected == norm(record)


def test_the_event_is_writable_as_avro() -> None:
    """The mapped event is a complete ubridge.v1.ProjectEvent that round-trips through fastavro."""
    schema = load_schema(str(SCHEMAS / "ubridge.v1.ProjectEvent.avsc"))
    event = norm(RAW)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, event)
    buffer.seek(0)
    assert (set(ProjectEvent.__annotations__), event) == (
        set(event),
        fastavro.schemaless_reader(buffer, schema),
    )


def test_event_id_is_deterministic_per_source_and_seq() -> None:
    """Same (source, seq) → same id, whatever else differs; another seq or source → another id."""
    first = norm(RAW)["event_id"]
    again = norm(raw(blzt=1, seq="17"))["event_id"]
    other_seq = norm(raw(seq=18))["event_id"]
    other_source = normalise(RAW, source="gonggai-db", ingested_at=INGESTED)["event_id"]
    assert (32, first) == (len(first), again)
    assert first not in (other_seq, other_source)


@pytest.mark.parametrize(
    ("blsj", "occurred_at"),
    [
        ("2026-11-25 10:31:00", datetime(2026, 11, 25, 2, 31, tzinfo=UTC)),
        ("2026-11-25T10:31:00", datetime(2026, 11, 25, 2, 31, tzinfo=UTC)),
        ("2026-11-25 00:10:00", datetime(2026, 11, 24, 16, 10, tzinfo=UTC)),
        ("2026-11-25T10:31:00+00:00", datetime(2026, 11, 25, 10, 31, tzinfo=UTC)),
        ("2026-11-25", datetime(2026, 11, 24, 16, 0, tzinfo=UTC)),
    ],
)
def test_handling_time_is_shanghai_local_unless_it_says_otherwise(blsj: str, occurred_at: datetime) -> None:
    """Naive times are Asia/Shanghai; explicit offsets are honoured; the result is aware UTC."""
    assert occurred_at == norm(raw(blsj=blsj))["occurred_at"]


@pytest.mark.parametrize(
    ("blzt", "codes", "status"),
    [
        (1, None, "RECEIVED"),
        (11, None, "GRANTED"),
        (13, None, "REFUSED"),
        (5, None, "IN_PROGRESS"),
        (0, None, "IN_PROGRESS"),
        (90, {90: "GRANTED"}, "GRANTED"),
        (11, {90: "GRANTED"}, "IN_PROGRESS"),
    ],
)
def test_item_status_goes_through_the_code_table(blzt: int, codes: Any, status: str) -> None:
    """The blzt code maps through the (configurable) code table; unlisted codes are IN_PROGRESS."""
    assert status == norm(raw(blzt=blzt), status_codes=codes)["item_status"]


@pytest.mark.parametrize(("sjyxbs", "retraction"), [(1, False), (0, True), (..., False), (None, False)])
def test_withdrawn_records_are_retractions(sjyxbs: Any, retraction: bool) -> None:
    """An sjyxbs of 0 marks a retraction; 1 or absent a valid record."""
    assert retraction == norm(raw(sjyxbs=sjyxbs))["retraction"]


@pytest.mark.parametrize(("xqxx", "demands"), [(..., []), (None, []), ([], [])])
def test_absent_demands_are_unknown(xqxx: Any, demands: list[Any]) -> None:
    """No xqxx means the demand is unknown, i.e. an empty list."""
    assert demands == norm(raw(xqxx=xqxx))["demands"]


def test_english_service_names_and_numeric_strings_are_accepted() -> None:
    """The fwlx service may be WATER/GAS/HEAT in any case, and numbers may arrive as strings."""
    record = raw(xqxx=[{"fwlx": "water", "gj_mm": "150", "yl": " 12.5 "}, {"fwlx": "HEAT", "grmj": "3e4"}], jzmj="")
    event = norm(record)
    assert (
        [
            {
                "service": "WATER",
                "pipe_diameter_mm": 150,
                "load": 12.5,
                "load_unit": None,
                "heated_area_m2": None,
            },
            {
                "service": "HEAT",
                "pipe_diameter_mm": None,
                "load": None,
                "load_unit": None,
                "heated_area_m2": 30000.0,
            },
        ],
        None,
    ) == (event["demands"], event["floor_area_m2"])


def test_documents_default_their_kind_and_normalise_the_digest() -> None:
    """A document without wjlx is OTHER; an uppercase digest is lowered and prefixed."""
    event = norm(raw(fjxx=[{"wjmc": "总平面图", "wjlx": "drawing"}, {"wjmc": "其他", "sha256": "AB" * 32}]))
    assert [
        {"kind": "DRAWING", "number": None, "title": "总平面图", "url": None, "digest": None},
        {"kind": "OTHER", "number": None, "title": "其他", "url": None, "digest": f"sha256:{DIGEST}"},
    ] == event["documents"]


def test_a_wrong_uscc_check_character_is_a_flag() -> None:
    """Only the check character wrong: the record passes with a flag."""
    wrong = USCC[:17] + ("0" if USCC[17] != "0" else "1")
    event = norm(raw(jsdwdm=wrong))
    assert (wrong, ["builder_uscc:check_character_mismatch"]) == (event["builder_uscc"], event["flags"])


def test_mobile_numbers_are_normalised() -> None:
    """The contact mobile is stored as 11 bare digits."""
    assert "13912345678" == norm(raw(lxrsjh="+86 139-1234-5678"))["contact_mobile"]


def test_the_project_code_error_names_raw_field_and_shape() -> None:
    """The example from the design: the raw field and the expected shape."""
    assert ("xmdm", "project code '2026-37-1' does not match NNNN-NNNNNN-NN-NN-NNNNNN") == error_of(
        raw(xmdm="2026-37-1")
    )


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        ("xmdm", "project_code"),
        ("xmmc", "project_name"),
        ("jsdw", "builder_name"),
        ("blsj", "occurred_at"),
    ],
)
@pytest.mark.parametrize("value", [..., None, "", "  "])
def test_missing_required_strings_are_named(key: str, canonical: str, value: Any) -> None:
    """Absent, null or blank required strings name the raw and canonical field."""
    assert (key, f"{canonical} is required but missing or empty") == error_of(raw(**{key: value}))


@pytest.mark.parametrize(("key", "canonical"), [("dybzspjdxh", "stage"), ("blzt", "item_status")])
def test_missing_required_integers_are_named(key: str, canonical: str) -> None:
    """Absent stage or status names the raw and canonical field."""
    assert (key, f"{canonical} is required but missing") == error_of(raw(**{key: ...}))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"seq": ...}, ("seq", "source_record_id must be an integer or a non-empty string, got null")),
        ({"seq": 1.5}, ("seq", "source_record_id must be an integer or a non-empty string, got number")),
        ({"seq": True}, ("seq", "source_record_id must be an integer or a non-empty string, got boolean")),
        ({"xmmc": 42}, ("xmmc", "project_name must be a string, got number")),
        ({"jsdw": ["a"]}, ("jsdw", "builder_name must be a string, got array")),
        ({"lxr": {"x": 1}}, ("lxr", "contact_name must be a string, got object")),
        (
            {"xmdm": "2026-370699-47-01-000123"},
            ("xmdm", "project code '2026-370699-47-01-000123' names unknown region 370699"),
        ),
        ({"jsddxzqh": "3706"}, ("jsddxzqh", "region code '3706' is not 6 digits")),
        ({"jsddxzqh": "370699"}, ("jsddxzqh", "region code 370699 is not a known GB/T 2260 region")),
        ({"jsdwdm": "9137"}, ("jsdwdm", "USCC '9137' has 4 characters, expected 18")),
        (
            {"lxrsjh": "12912345678"},
            (
                "lxrsjh",
                "mobile number starts with 12, expected 13-19; "
                "nor is it a landline with its area code like 0535-6123456",
            ),
        ),
        ({"dybzspjdxh": 6}, ("dybzspjdxh", "stage 6 is not one of 1-5")),
        ({"dybzspjdxh": 0}, ("dybzspjdxh", "stage 0 is not one of 1-5")),
        ({"dybzspjdxh": "2"}, ("dybzspjdxh", "stage must be an integer, got string")),
        ({"blzt": "11"}, ("blzt", "item_status must be an integer, got string")),
        ({"blzt": 11.0}, ("blzt", "item_status must be an integer, got number")),
        ({"blzt": False}, ("blzt", "item_status must be an integer, got boolean")),
        ({"blsj": "25/11/2026"}, ("blsj", "occurred_at '25/11/2026' is not a time like 2026-11-25 10:31:00")),
        (
            {"blsj": "0001-01-01 00:00:00"},
            ("blsj", "occurred_at '0001-01-01 00:00:00' is not a time like 2026-11-25 10:31:00"),
        ),
        ({"sjyxbs": 2}, ("sjyxbs", "retraction flag must be 0 (withdrawn) or 1 (valid), got 2")),
        ({"sjyxbs": "0"}, ("sjyxbs", "retraction flag must be 0 (withdrawn) or 1 (valid), got '0'")),
        ({"jzmj": "many"}, ("jzmj", "floor_area_m2 'many' is not a number")),
        ({"ydmj": -1}, ("ydmj", "land_area_m2 -1 is not a finite non-negative number")),
        ({"ztze": "nan"}, ("ztze", "investment_10k_cny 'nan' is not a finite non-negative number")),
        ({"ztze": 10**400}, ("ztze", "investment_10k_cny is too large")),
        ({"jzmj": [1]}, ("jzmj", "floor_area_m2 must be a number, got array")),
        ({"xqxx": {"fwlx": "供水"}}, ("xqxx", "demands must be a list, got object")),
        ({"xqxx": ["供水"]}, ("xqxx.0", "demand must be an object, got string")),
        ({"xqxx": [{"yl": 1}]}, ("xqxx.0.fwlx", "demands.service is required but missing or empty")),
        (
            {"xqxx": [{"fwlx": "供油"}]},
            ("xqxx.0.fwlx", "demands.service '供油' is not 供水/供气/供热/供电/通信 (WATER/GAS/HEAT/POWER/TELECOM)"),
        ),
        ({"xqxx": [{"fwlx": "供水"}, {"fwlx": "WATER"}]}, ("xqxx.1.fwlx", "demands: WATER is listed twice")),
        (
            {"xqxx": [{"fwlx": "供水", "gj_mm": 100.5}]},
            ("xqxx.0.gj_mm", "demands.pipe_diameter_mm 100.5 is not a whole number of mm in 1-10000"),
        ),
        (
            {"xqxx": [{"fwlx": "供水", "gj_mm": 0}]},
            ("xqxx.0.gj_mm", "demands.pipe_diameter_mm 0 is not a whole number of mm in 1-10000"),
        ),
        ({"xqxx": [{"fwlx": "供气", "yl": "x"}]}, ("xqxx.0.yl", "demands.load 'x' is not a number")),
        (
            {"xqxx": [{"fwlx": "供气", "yldw": 3}]},
            ("xqxx.0.yldw", "demands.load_unit must be a string, got number"),
        ),
        ({"fjxx": "a.pdf"}, ("fjxx", "documents must be a list, got string")),
        ({"fjxx": [None]}, ("fjxx.0", "document must be an object, got null")),
        ({"fjxx": [{"wjlx": "PERMIT"}]}, ("fjxx.0.wjmc", "documents.title is required but missing or empty")),
        (
            {"fjxx": [{"wjmc": "x", "wjlx": "PHOTO"}]},
            (
                "fjxx.0.wjlx",
                "documents.kind 'PHOTO' is not one of ['APPROVAL', 'DRAWING', 'OTHER', 'PERMIT']",
            ),
        ),
        (
            {"fjxx": [{"wjmc": "x", "xzdz": "see the paper copy"}]},
            ("fjxx.0.xzdz", "documents.url 'see the paper copy' is not a link (a URI, a UNC path or a drive path)"),
        ),
        (
            {"fjxx": [{"wjmc": "x", "sha256": "abc"}]},
            ("fjxx.0.sha256", "documents.digest 'abc' is not 32, 40, 64 or 128 hex digits"),
        ),
    ],
)
def test_faults_name_raw_path_and_canonical_field(changes: dict[str, Any], error: tuple[str, str]) -> None:
    """Each fault raises DataError with the raw path as field and the canonical field in the reason."""
    assert error == error_of(raw(**changes))


def test_a_naive_ingestion_time_is_refused() -> None:
    """ingested_at must be an aware timestamp."""
    with pytest.raises(ValueError, match="timezone-aware"):
        normalise(RAW, source="gonggai-interface", ingested_at=datetime(2026, 11, 25))  # noqa: DTZ001 - the point


HUGE = 10**5000  # str() of this raises ValueError in Python 3.11+


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"seq": HUGE}, ("seq", "source_record_id number is not a serial in 0 to 2**63-1")),
        ({"seq": -1}, ("seq", "source_record_id -1 is not a serial in 0 to 2**63-1")),
        ({"dybzspjdxh": HUGE}, ("dybzspjdxh", "stage number is not one of 1-5")),
        ({"sjyxbs": HUGE}, ("sjyxbs", "retraction flag must be 0 (withdrawn) or 1 (valid), got number")),
        ({"jzmj": -HUGE}, ("jzmj", "floor_area_m2 is too large")),
        ({"jzmj": "x" * 100}, ("jzmj", f"floor_area_m2 {'x' * 40!r}… is not a number")),
        (
            {"xmdm": "9" * 100},
            ("xmdm", f"project code {'9' * 40!r}… does not match NNNN-NNNNNN-NN-NN-NNNNNN"),
        ),
    ],
)
def test_huge_values_are_not_echoed(changes: dict[str, Any], error: tuple[str, str]) -> None:
    """Huge numbers and long strings are named or cut short in reasons, never echoed whole."""
    assert error == error_of(raw(**changes))


@pytest.mark.parametrize("record", [[], "x", None, 17])
def test_a_non_object_record_is_a_data_error(record: Any) -> None:
    """Anything but a JSON object is rejected as a whole."""
    assert "" == error_of(record)[0]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from([1, -1]).map(lambda sign: sign * HUGE)
    | st.just("9" * 10_000),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def outcome(record: Any) -> ProjectEvent | DataError:
    """The event, or the DataError; any other exception fails the calling test."""
    try:
        return norm(record)
    except DataError as exc:
        return exc


@given(json_values)
def test_arbitrary_json_only_ever_raises_data_error(record: Any) -> None:
    """Whatever JSON arrives, the outcome is an event or a DataError."""
    assert isinstance(outcome(record), dict | DataError)


@given(st.sampled_from(sorted(RAW)), json_values)
def test_any_one_corrupted_field_only_ever_raises_data_error(key: str, value: Any) -> None:
    """Replacing any one field of a valid record with arbitrary JSON yields an event or a DataError."""
    assert isinstance(outcome(raw(**{key: value})), dict | DataError)


@given(
    st.sampled_from(["xqxx", "fjxx"]),
    st.integers(0, 2),
    st.sampled_from(["fwlx", "gj_mm", "yl", "yldw", "grmj", "wjlx", "wjbh", "wjmc", "xzdz", "sha256"]),
    json_values,
)
def test_any_corrupted_nested_field_only_ever_raises_data_error(key: str, index: int, field: str, value: Any) -> None:
    """Corrupting a field of a demand or document yields an event or a DataError naming its path."""
    items = [dict(item) for item in RAW[key]]
    items[index % len(items)][field] = value
    result = outcome(raw(**{key: items}))
    assert isinstance(result, dict) or result.field.startswith((f"{key}.", key))


@given(st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True))
def test_numeric_strings_equal_their_numbers(text: str) -> None:
    """A numeric string maps to the same float as the number itself."""
    assert norm(raw(jzmj=float(text)))["floor_area_m2"] == norm(raw(jzmj=text))["floor_area_m2"]
