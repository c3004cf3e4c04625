import copy
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.errors import DataError
from routing.gonggai import normalise
from routing.mapping import VendorMapping, apply_mapping, load_mapping, parse_mapping
from routing.records import ProjectEvent
from simulators.approval.generator import EventGenerator, inject_defect

MAPPINGS = Path(__file__).parents[3] / "deploy" / "config" / "mappings"
INGESTED = datetime(2026, 11, 25, 3, 0, 5, tzinfo=UTC)
OCCURRED = datetime(2026, 11, 25, 2, 31, tzinfo=UTC)  # 2026-11-25 10:31:00 Asia/Shanghai
USCC = "91370602MA3C0X1P4G"
DIGEST = "ab" * 32
PROJECT = "2026-370602-47-01-000123"

YANTAI_EVENT: dict[str, Any] = {
    "eventId": 17,
    "projectCode": PROJECT,
    "projectName": "芝罘区幸福里住宅小区三期",
    "siteAddress": "山东省烟台市芝罘区幸福南路18号",
    "regionCode": "370602",
    "builderName": "烟台市幸福置业有限公司",
    "builderCreditCode": USCC,
    "nature": "EXPAND",
    "totalInvestment": 12000.0,
    "landArea": 23000.5,
    "floorArea": 56000.0,
    "itemCode": "000117004",
    "itemInstanceCode": "37060200011700012345",
    "itemName": "建设工程规划许可证核发",
    "stageNo": 2,
    "statusCode": "09",
    "handleTime": 1795573860000,
    "contactName": "张伟",
    "contactPhone": "13912345678",
    "deleted": False,
    "demands": [
        {"serviceCode": "WS", "pipeDn": 100, "quantity": 300.0, "unit": "m3/d"},
        {"serviceCode": "HS", "heatingArea": 48000.0},
    ],
    "attachments": [
        {
            "type": "PERMIT",
            "no": "建字第370602202600123号",
            "name": "建设工程规划许可证",
            "url": "https://gcjs.example.gov.cn/files/abc.pdf",
            "sha256": DIGEST,
        }
    ],
}

LIAOCHENG_EVENT: dict[str, Any] = {
    "serial": "LC-2026-000017",
    "valid": "Y",
    "project": {
        "代码": "2026-371502-48-02-000456",
        "名称": "东昌府区金沙花园住宅小区二期",
        "地址": "山东省聊城市东昌府区东昌路88号",
        "行政区划": "371502",
        "性质": "新建",
        "总投资元": 85_000_000,
        "用地面积公顷": 2.35,
        "建筑面积平方米": 61000,
        "建设单位": {"名称": "聊城市金沙置业有限公司", "统一社会信用代码": USCC},
    },
    "approval": {
        "阶段": "3",
        "事项": {"编码": "000115001", "实例编码": "37150200011500012346", "名称": "建筑工程施工许可证核发"},
        "办理记录": [
            {"状态": "不予许可", "时间": "20261125103100", "意见": "材料不全"},
            {"状态": "受理", "时间": "20261120090000"},
        ],
        "联系人": {"姓名": "李娜", "手机": "15061234567"},
    },
    "demands": [{"类型": "天然气", "用量": 60.0, "单位": "m3/h"}],
    "attachments": [
        {"类别": "图纸", "文号": "LC-ZP-01", "名称": "总平面图", "下载地址": "https://lc.example.gov.cn/zp.pdf"}
    ],
}


@pytest.fixture(scope="module")
def yantai() -> VendorMapping:
    """The shipped Yantai mapping."""
    return load_mapping(MAPPINGS / "vendor-yantai.yaml")


@pytest.fixture(scope="module")
def liaocheng() -> VendorMapping:
    """The shipped Liaocheng mapping."""
    return load_mapping(MAPPINGS / "vendor-liaocheng.yaml")


@pytest.fixture(scope="module")
def default() -> VendorMapping:
    """The shipped identity mapping of the default format."""
    return load_mapping(MAPPINGS / "default.yaml")


def norm(event: dict[str, Any]) -> ProjectEvent:
    return normalise(event, source="gonggai-webhook", ingested_at=INGESTED)


def mapping(fields: dict[str, Any]) -> VendorMapping:
    return parse_mapping({"vendor": "test", "fields": fields}, origin="test.yaml")


def data_error(rules: VendorMapping, event: Any) -> tuple[str, str]:
    with pytest.raises(DataError) as caught:
        apply_mapping(rules, event)
    return caught.value.field, caught.value.reason


def test_yantai_event_maps_to_the_canonical_event(yantai: VendorMapping) -> None:
    """A flat camelCase Yantai event with epoch millis and codes becomes the right ProjectEvent."""
    event = norm(apply_mapping(yantai, YANTAI_EVENT))
    assert event["source_record_id"] == "17"
    assert (event["project_code"], event["region_code"], event["builder_uscc"]) == (PROJECT, "370602", USCC)
    assert (event["stage"], event["item_status"], event["retraction"]) == (2, "GRANTED", False)
    assert event["occurred_at"] == OCCURRED
    assert event["project_nature"] == "扩建"
    assert (event["investment_10k_cny"], event["land_area_m2"], event["floor_area_m2"]) == (12000.0, 23000.5, 56000.0)
    assert event["contact_mobile"] == "13912345678"
    assert event["demands"] == [
        {"service": "WATER", "pipe_diameter_mm": 100, "load": 300.0, "load_unit": "m3/d", "heated_area_m2": None},
        {"service": "HEAT", "pipe_diameter_mm": None, "load": None, "load_unit": None, "heated_area_m2": 48000.0},
    ]
    assert event["documents"] == [
        {
            "kind": "PERMIT",
            "number": "建字第370602202600123号",
            "title": "建设工程规划许可证",
            "url": "https://gcjs.example.gov.cn/files/abc.pdf",
            "digest": f"sha256:{DIGEST}",
        }
    ]


def test_yantai_deleted_flag_is_a_retraction(yantai: VendorMapping) -> None:
    """Yantai's boolean ``deleted`` becomes a retraction, and its absence means a valid record."""
    assert norm(apply_mapping(yantai, {**YANTAI_EVENT, "deleted": True}))["retraction"] is True
    without = {k: v for k, v in YANTAI_EVENT.items() if k != "deleted"}
    assert apply_mapping(yantai, without)["sjyxbs"] == 1


def test_liaocheng_event_maps_to_the_canonical_event(liaocheng: VendorMapping) -> None:
    """A nested Liaocheng event with Chinese keys, compact times, hectares and yuan becomes the right event."""
    event = norm(apply_mapping(liaocheng, LIAOCHENG_EVENT))
    assert event["source_record_id"] == "LC-2026-000017"
    assert (event["project_code"], event["region_code"]) == ("2026-371502-48-02-000456", "371502")
    assert (event["builder_name"], event["builder_uscc"]) == ("聊城市金沙置业有限公司", USCC)
    assert (event["stage"], event["item_status"]) == (3, "REFUSED")  # the newest record of the history
    assert event["occurred_at"] == OCCURRED
    assert event["land_area_m2"] == 23500.0  # 2.35 公顷
    assert event["investment_10k_cny"] == 8500.0  # 85,000,000 元
    assert event["floor_area_m2"] == 61000.0
    assert (event["item_code"], event["item_name"]) == ("000115001", "建筑工程施工许可证核发")
    assert (event["contact_name"], event["contact_mobile"]) == ("李娜", "15061234567")
    assert event["demands"] == [
        {"service": "GAS", "pipe_diameter_mm": None, "load": 60.0, "load_unit": "m3/h", "heated_area_m2": None}
    ]
    assert event["documents"] == [
        {"kind": "DRAWING", "number": "LC-ZP-01", "title": "总平面图", "url": "https://lc.example.gov.cn/zp.pdf",
         "digest": None}
    ]  # fmt: skip
    assert event["retraction"] is False


def test_liaocheng_withdrawn_record_is_a_retraction(liaocheng: VendorMapping) -> None:
    """Liaocheng's ``valid: N`` becomes a retraction."""
    assert norm(apply_mapping(liaocheng, {**LIAOCHENG_EVENT, "valid": "N"}))["retraction"] is True


def test_default_mapping_is_the_identity(default: VendorMapping) -> None:
    """The default mapping changes nothing that normalise sees, for valid and defective events alike."""
    generator = EventGenerator(seed=3)
    for event in generator.generate(200, invalid_rate=0.2, unserved_rate=0.1):
        assert apply_mapping(default, event) == event
    assert default.source_of("xqxx.1.fwlx") == "xqxx[1].fwlx"


def test_missing_required_field_names_the_vendor_path(yantai: VendorMapping, liaocheng: VendorMapping) -> None:
    """A required source field that is absent or null is a DataError naming the vendor's path."""
    assert data_error(yantai, {**YANTAI_EVENT, "projectCode": None})[0] == "projectCode"
    event = copy.deepcopy(LIAOCHENG_EVENT)
    event["approval"]["办理记录"] = []
    field, reason = data_error(liaocheng, event)
    assert field == "approval.办理记录[0].状态"
    assert "blzt" in reason


def test_value_outside_a_table_names_the_vendor_path(yantai: VendorMapping, liaocheng: VendorMapping) -> None:
    """A code the vendor's table does not list is a DataError naming the item's vendor path."""
    event = copy.deepcopy(YANTAI_EVENT)
    event["demands"][1]["serviceCode"] = "EL"
    field, reason = data_error(yantai, event)
    assert field == "demands[1].serviceCode"
    assert "'EL'" in reason
    assert "WS" in reason
    assert data_error(liaocheng, {**LIAOCHENG_EVENT, "valid": "maybe"})[0] == "valid"


def test_wrong_nesting_names_the_vendor_path(liaocheng: VendorMapping) -> None:
    """An object that arrives as text, or an array as an object, is reported where it is."""
    field, reason = data_error(liaocheng, {**LIAOCHENG_EVENT, "project": "2026-371502-48-02-000456"})
    assert field == "project"
    assert "object" in reason
    field, _ = data_error(liaocheng, {**LIAOCHENG_EVENT, "attachments": {"名称": "x"}})
    assert field == "attachments"
    field, _ = data_error(liaocheng, {**LIAOCHENG_EVENT, "demands": ["天然气"]})
    assert field == "demands[0]"


def test_validation_errors_are_translated_to_vendor_paths(liaocheng: VendorMapping) -> None:
    """A fault normalise finds in the mapped event is reported at the vendor's path."""
    event = copy.deepcopy(LIAOCHENG_EVENT)
    event["project"]["行政区划"] = "379999"
    event["demands"][0]["管径DN"] = -5
    with pytest.raises(DataError) as caught:
        norm(apply_mapping(liaocheng, event))
    assert liaocheng.vendor_error(caught.value).field == "project.行政区划"
    event["project"]["行政区划"] = "371502"
    with pytest.raises(DataError) as caught:
        norm(apply_mapping(liaocheng, event))
    assert liaocheng.source_of(caught.value.field) == "demands[0].管径DN"
    assert liaocheng.source_of("flags") == "flags"


def test_paths_reach_into_objects_and_arrays() -> None:
    """Dotted names and indexes, negative ones too, read nested values; absent steps leave the field out."""
    rules = mapping({"a": "x.y[1].z", "b": "x.y[-1].z", "c": "x.y[5].z", "d": {"path": "q", "default": 0}})
    assert apply_mapping(rules, {"x": {"y": [{"z": 1}, {"z": 2}, {"z": 3}]}}) == {"a": 2, "b": 3, "d": 0}
    assert apply_mapping(rules, {}) == {"d": 0}
    assert data_error(rules, {"x": {"y": {"z": 1}}}) == ("x.y", "must be an array to read [1], got object")


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("epoch_ms", 1795573860000, "2026-11-25 10:31:00"),
        ("epoch_ms", "1795573860000", "2026-11-25 10:31:00"),
        ("epoch_s", 1795573860, "2026-11-25 10:31:00"),
        ("iso", "2026-11-25T02:31:00Z", "2026-11-25 10:31:00"),
        ("iso", "2026-11-25T10:31:00", "2026-11-25 10:31:00"),
        ("yyyyMMddHHmmss", "20261125103100", "2026-11-25 10:31:00"),
        ("yyyy/MM/dd HH:mm", "2026/11/25 10:31", "2026-11-25 10:31:00"),
        ("%d.%m.%Y %H:%M:%S", "25.11.2026 10:31:00", "2026-11-25 10:31:00"),
    ],
)
def test_times_are_converted_to_shanghai_text(spec: str, value: object, expected: str) -> None:
    """Every time format becomes ``YYYY-MM-DD HH:MM:SS`` in Asia/Shanghai."""
    assert apply_mapping(mapping({"blsj": {"path": "t", "time": spec}}), {"t": value}) == {"blsj": expected}


@pytest.mark.parametrize(
    ("spec", "value"),
    [("epoch_ms", "soon"), ("epoch_ms", 10**30), ("epoch_s", True), ("iso", 5), ("yyyyMMddHHmmss", "2026-11-25")],
)
def test_unreadable_times_are_data_errors(spec: str, value: object) -> None:
    """A time that does not match its format is a DataError naming the vendor path."""
    field, reason = data_error(mapping({"blsj": {"path": "when", "time": spec}}), {"when": value})
    assert field == "when"
    assert "time" in reason


def test_scale_round_and_type_convert_values() -> None:
    """Units are scaled and rounded; types are converted, and a value that is not convertible is refused."""
    rules = mapping(
        {
            "ydmj": {"path": "ha", "scale": 10000, "round": 1},
            "dybzspjdxh": {"path": "stage", "type": "int"},
            "xmdm": {"path": "code", "type": "string"},
            "jzmj": {"path": "area", "type": "number"},
        }
    )
    event = {"ha": "2.30005", "stage": " 3 ", "code": 42, "area": "61000.5"}
    assert apply_mapping(rules, event) == {"ydmj": 23000.5, "dybzspjdxh": 3, "xmdm": "42", "jzmj": 61000.5}
    assert data_error(rules, {**event, "stage": "3.5"})[0] == "stage"
    assert data_error(rules, {**event, "ha": "很多"})[0] == "ha"
    assert data_error(rules, {**event, "ha": 1e305})[0] == "ha"


def test_tables_compare_numbers_and_text_alike() -> None:
    """A table keyed by ``11`` matches the number 11, 11.0 and the text "11"."""
    rules = mapping({"blzt": {"path": "s", "table": {11: 11, "Y": 1, True: 0}}})
    assert [apply_mapping(rules, {"s": v})["blzt"] for v in (11, 11.0, "11", "Y", True)] == [11, 11, 11, 1, 0]
    assert data_error(rules, {"s": [11]})[0] == "s"


def test_constants_and_lists_are_built() -> None:
    """Constants are set as given; list items are mapped by their own rules, optional lists left out."""
    rules = mapping({"sjyxbs": {"const": 1}, "xqxx": {"list": "d", "item": {"fwlx": {"path": "t", "required": True}}}})
    assert apply_mapping(rules, {"d": [{"t": "供水"}, {"t": "供热"}]}) == {
        "sjyxbs": 1,
        "xqxx": [{"fwlx": "供水"}, {"fwlx": "供热"}],
    }
    assert apply_mapping(rules, {"d": None}) == {"sjyxbs": 1}
    assert data_error(rules, {"d": [{"t": "供水"}, {}]}) == ("d[1].t", "required for fwlx but missing or null")


def test_non_object_event_is_a_data_error(yantai: VendorMapping) -> None:
    """An event that is not a JSON object is a DataError about the whole record."""
    assert data_error(yantai, ["projectCode"]) == ("", "event must be a JSON object, got array")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "bad.yaml: a mapping file must be a YAML mapping"),
        ({"vendor": "Yantai", "fields": {"a": "b"}}, "bad.yaml: vendor: must be a lowercase name"),
        ({"vendor": "x", "fields": {}}, "bad.yaml: fields: must be a non-empty mapping"),
        ({"vendor": "x", "fields": {"a": "b"}, "extra": 1}, "bad.yaml: extra: Extra inputs are not permitted"),
        ({"vendor": "x", "fields": {"a": 5}}, "bad.yaml: fields.a: must be a source path"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "const": 1}}}, "bad.yaml: fields.a: needs exactly one of"),
        ({"vendor": "x", "fields": {"a": {"path": "p..q"}}}, "bad.yaml: fields.a.path: 'p..q' is not a path"),
        ({"vendor": "x", "fields": {"a": {"path": "p[x]"}}}, "bad.yaml: fields.a.path:"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "tabel": {}}}}, "bad.yaml: fields.a.tabel: Extra inputs"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "table": []}}}, "bad.yaml: fields.a.table: must be"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "time": "HHmm"}}}, "bad.yaml: fields.a.time: pattern"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "time": "%Y %Q"}}}, "bad.yaml: fields.a.time:"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "scale": 0}}}, "bad.yaml: fields.a.scale: must be a non-zero"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "round": 2}}}, "bad.yaml: fields.a.round: only applies"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "type": "date"}}}, "bad.yaml: fields.a.type: must be one of"),
        ({"vendor": "x", "fields": {"a": {"path": "p", "required": "yes"}}}, "bad.yaml: fields.a.required:"),
        ({"vendor": "x", "fields": {"a": {"const": datetime(2026, 1, 1, tzinfo=UTC)}}}, "bad.yaml: fields.a.const:"),
        ({"vendor": "x", "fields": {"a": {"list": "l"}}}, "bad.yaml: fields.a.item: must be a non-empty mapping"),
        ({"vendor": "x", "fields": {"a": {"list": "l", "item": {"b": {"path": "c", "x": 1}}}}}, "fields.a.item.b.x"),
    ],
)
def test_invalid_mappings_name_the_file_and_key(document: Any, message: str) -> None:
    """A mapping document that cannot be used is refused with the origin and the offending key."""
    with pytest.raises(ValueError, match=r"^bad\.yaml: ") as caught:
        parse_mapping(document, origin="bad.yaml")
    assert message in str(caught.value)


def test_every_fault_of_a_mapping_is_reported_at_once() -> None:
    """Three faults in three rules give three lines, each naming the file and the key, with a suggestion."""
    fields = {"a": {"path": "p", "tabel": {}}, "b": {"path": "q", "scale": 0}, "c": {"path": "r", "item": {}}}
    with pytest.raises(ValueError) as caught:
        parse_mapping({"vendor": "x", "fields": fields}, origin="bad.yaml")
    assert str(caught.value).splitlines() == [
        "bad.yaml: fields.a.tabel: Extra inputs are not permitted; did you mean 'table'?",
        "bad.yaml: fields.b.scale: must be a non-zero number",
        "bad.yaml: fields.c: 'item' does not apply to a 'path' rule; it takes ['default', 'path', 'required', "
        "'round', 'scale', 'table', 'time', 'type']",
    ]


def test_load_mapping_names_the_file(tmp_path: Path) -> None:
    """An unreadable or malformed file is refused naming the file."""
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValueError, match=r"missing\.yaml"):
        load_mapping(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("vendor: [unclosed", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.yaml"):
        load_mapping(broken)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
SHIPPED = ("default.yaml", "vendor-yantai.yaml", "vendor-liaocheng.yaml")
SAMPLES = {"vendor-yantai.yaml": YANTAI_EVENT, "vendor-liaocheng.yaml": LIAOCHENG_EVENT}


def leaf_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += leaf_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths += leaf_paths(value, (*prefix, i))
    return paths


def replaced(event: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    node: Any = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return changed


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(SHIPPED), event=JSON)
def test_arbitrary_json_raises_only_data_errors(name: str, event: Any) -> None:
    """Whatever JSON arrives, mapping and then validating it raises nothing but DataError."""
    rules = load_mapping(MAPPINGS / name)
    try:
        norm(apply_mapping(rules, event))
    except DataError:
        pass


@settings(max_examples=400, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(SAMPLES)), value=JSON)
def test_vendor_events_with_any_field_changed_raise_only_data_errors(
    data: st.DataObject, name: str, value: Any
) -> None:
    """A valid vendor event with any one value replaced by arbitrary JSON maps, or fails with a DataError."""
    sample = SAMPLES[name]
    path = data.draw(st.sampled_from(leaf_paths(sample)))
    rules = load_mapping(MAPPINGS / name)
    try:
        norm(apply_mapping(rules, replaced(sample, path, value)))
    except DataError as exc:
        assert isinstance(exc.field, str)
        assert exc.reason


def test_defective_generator_events_stay_data_errors(default: VendorMapping) -> None:
    """Every defect the simulator injects is still caught after the identity mapping."""
    event = EventGenerator(seed=5).generate(1)[0]
    for defect in ("project_code", "region", "missing_name", "bad_time", "bad_stage"):
        broken = inject_defect(event, defect, random.Random(1))
        with pytest.raises(DataError):
            norm(apply_mapping(default, broken))
