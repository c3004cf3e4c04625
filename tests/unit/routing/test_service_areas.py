import datetime
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.records import Service
from routing.service_areas import ServiceArea, ServiceAreaTable, load_service_areas, parse_service_areas
from routing.services import shipped_services

DEMO_TABLE = Path(__file__).parents[3] / "deploy" / "config" / "service-areas.yaml"


@pytest.fixture(scope="module")
def demo() -> ServiceAreaTable:
    """The demo table shipped in deploy/config."""
    return load_service_areas(DEMO_TABLE)


def doc_with(**area: Any) -> dict[str, Any]:
    """A valid document whose fourth row is replaced by ``area``."""
    rows: list[Any] = [
        {"utility": "yantai-water", "region_prefix": "3706", "services": ["WATER"]},
        {"utility": "yantai-gas", "region_prefix": "3706", "services": ["GAS"]},
        {"utility": "yantai-heat", "region_prefix": "3706", "services": ["HEAT"]},
        area,
    ]
    return {"version": "2026-11-01", "areas": rows}


def test_demo_table_names_its_utilities(demo: ServiceAreaTable) -> None:
    """The demo table loads and lists the eight demo utilities."""
    expected = {
        "yantai-water",
        "yantai-gas",
        "zhaoyuan-gas",
        "yantai-heat",
        "liaocheng-water",
        "liaocheng-gas",
        "jinan-heat",
        "jinan-water",
    }
    assert ("2026-11-01", expected) == (demo.version, demo.utilities())


@pytest.mark.parametrize(
    ("region", "service", "utility"),
    [
        ("370685", "GAS", "zhaoyuan-gas"),
        ("370602", "GAS", "yantai-gas"),
        ("370685", "WATER", "yantai-water"),
        ("370685", "HEAT", "yantai-heat"),
        ("371502", "WATER", "liaocheng-water"),
        ("371503", "GAS", "liaocheng-gas"),
        ("371502", "HEAT", None),
        ("370102", "HEAT", "jinan-heat"),
        ("370102", "GAS", None),
        ("370202", "WATER", None),
        ("110101", "WATER", None),
    ],
)
def test_most_specific_prefix_wins(demo: ServiceAreaTable, region: str, service: Service, utility: str | None) -> None:
    """The longest matching prefix serves; no match means no utility."""
    assert utility == demo.utility_for(region, service)


@pytest.mark.parametrize(
    ("region", "coverage"),
    [
        ("370685", [("yantai-water", "WATER"), ("zhaoyuan-gas", "GAS"), ("yantai-heat", "HEAT")]),
        ("370602", [("yantai-water", "WATER"), ("yantai-gas", "GAS"), ("yantai-heat", "HEAT")]),
        ("371502", [("liaocheng-water", "WATER"), ("liaocheng-gas", "GAS")]),
        ("370102", [("jinan-water", "WATER"), ("jinan-heat", "HEAT")]),
        ("370202", []),
    ],
)
def test_coverage_lists_the_winner_per_service(
    demo: ServiceAreaTable, region: str, coverage: list[tuple[str, Service]]
) -> None:
    """Coverage gives one (utility, service) pair per served service, in WATER, GAS, HEAT order."""
    assert coverage == demo.coverage(region)


def test_a_short_region_code_matches_no_longer_prefix() -> None:
    """A prefix longer than the code being looked up never matches it."""
    table = parse_service_areas(doc_with(utility="zhaoyuan-gas", region_prefix="370685", services=["GAS"]))
    assert "yantai-gas" == table.utility_for("3706", "GAS")


def test_unquoted_prefix_and_version_are_read_losslessly() -> None:
    """YAML reads 3706 as an int and 2026-11-01 as a date; both are taken as the text written."""
    table = parse_service_areas(
        {
            "version": datetime.date(2026, 11, 1),
            "areas": [{"utility": "yantai-gas", "region_prefix": 3706, "services": ["GAS"]}],
        }
    )
    assert ServiceAreaTable("2026-11-01", (ServiceArea("yantai-gas", "3706", ("GAS",)),)) == table


@pytest.mark.parametrize(
    ("area", "message"),
    [
        (
            {"utility": "x-gas", "region_prefix": "37A6", "services": ["GAS"]},
            "service-areas.yaml: areas[3].region_prefix: '37A6' is not 2-6 digits",
        ),
        (
            {"utility": "x-gas", "region_prefix": "3", "services": ["GAS"]},
            "service-areas.yaml: areas[3].region_prefix: '3' is not 2-6 digits",
        ),
        (
            {"utility": "x-gas", "region_prefix": True, "services": ["GAS"]},
            "service-areas.yaml: areas[3].region_prefix: Input should be a valid string",
        ),
        (
            {"utility": "x-gas", "region_prefix": "3760", "services": ["GAS"]},
            "service-areas.yaml: areas[3].region_prefix: unknown region prefix '3760'; did you mean '3706'?",
        ),
        (
            {"utility": "x-gas", "region_prefix": "370699", "services": ["GAS"]},
            "service-areas.yaml: areas[3].region_prefix: unknown region code '370699'",
        ),
        (
            {"utility": "x-gas", "region_prefix": "99", "services": ["GAS"]},
            "service-areas.yaml: areas[3].region_prefix: unknown region prefix '99'",
        ),
        (
            {"utility": "Yantai Gas", "region_prefix": "3715", "services": ["GAS"]},
            "service-areas.yaml: areas[3].utility: 'Yantai Gas' is not a utility id "
            "(lowercase letters, digits and dashes, e.g. yantai-water)",
        ),
        (
            {"region_prefix": "3715", "services": ["GAS"]},
            "service-areas.yaml: areas[3].utility: Field required",
        ),
        (
            {"utility": "x-gas", "region_prefix": "3715", "services": ["OIL"]},
            "service-areas.yaml: areas[3].services[0]: unknown service 'OIL'; "
            "expected one of ['WATER', 'GAS', 'HEAT', 'POWER', 'TELECOM']",
        ),
        (
            {"utility": "x-gas", "region_prefix": "3715", "services": ["GAS", "GAS"]},
            "service-areas.yaml: areas[3].services: GAS listed twice",
        ),
        (
            {"utility": "x-gas", "region_prefix": "3715", "services": []},
            "service-areas.yaml: areas[3].services: must list at least one of "
            "['WATER', 'GAS', 'HEAT', 'POWER', 'TELECOM']",
        ),
        (
            {"utility": "x-gas", "region_prefix": "3715", "services": "GAS"},
            "service-areas.yaml: areas[3].services: Input should be a valid tuple",
        ),
        (
            {"utility": "x-gas", "region_prefix": "3715", "servics": ["GAS"]},
            "service-areas.yaml: areas[3].services: Field required\n"
            "service-areas.yaml: areas[3].servics: Extra inputs are not permitted; did you mean 'services'?",
        ),
        (
            {"utility": "other-gas", "region_prefix": "3706", "services": ["GAS"]},
            "service-areas.yaml: areas[3]: prefix '3706' GAS is already served by 'yantai-gas' (areas[1])",
        ),
    ],
)
def test_config_errors_name_the_file_and_key(area: dict[str, Any], message: str) -> None:
    """Each fault in a row is reported with the origin and the key path."""
    with pytest.raises(ValueError) as caught:
        parse_service_areas(doc_with(**area), origin="service-areas.yaml")
    assert message == str(caught.value)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "<memory>: <top>: Input should be a valid dictionary or instance of ServiceAreasFile"),
        ({"version": "1"}, "<memory>: areas: Field required"),
        ({"version": "1", "areas": []}, "<memory>: areas: must list at least one service area"),
        (
            {"version": "1", "areas": ["x"]},
            "<memory>: areas[0]: Input should be a valid dictionary or instance of AreaRow",
        ),
        (
            {"version": "", "areas": doc_with(utility="a", region_prefix="37", services=["GAS"])["areas"]},
            "<memory>: version: must not be empty",
        ),
        (
            {"areas": doc_with(utility="a", region_prefix="37", services=["GAS"])["areas"]},
            "<memory>: version: Field required",
        ),
    ],
)
def test_document_level_errors(doc: Any, message: str) -> None:
    """Faults of the document as a whole name the top-level key."""
    with pytest.raises(ValueError) as caught:
        parse_service_areas(doc)
    assert message == str(caught.value)


def test_load_names_the_file_on_yaml_errors(tmp_path: Path) -> None:
    """A YAML syntax error is a ValueError that names the file."""
    path = tmp_path / "areas.yaml"
    path.write_text("version: '1'\nareas: [\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: not valid YAML"):
        load_service_areas(path)


def test_load_names_the_file_on_table_errors(tmp_path: Path) -> None:
    """A table error found after loading is prefixed with the file's path."""
    path = tmp_path / "areas.yaml"
    path.write_text("version: '1'\nareas:\n  - {utility: a, region_prefix: '37A6', services: [GAS]}\n")
    with pytest.raises(ValueError) as caught:
        load_service_areas(path)
    assert f"{path}: areas[0].region_prefix: '37A6' is not 2-6 digits" == str(caught.value)


def test_direct_construction_rejects_duplicates() -> None:
    """The table itself refuses two rows with the same prefix and service."""
    rows = (ServiceArea("a", "3706", ("GAS",)), ServiceArea("b", "3706", ("WATER", "GAS")))
    with pytest.raises(ValueError, match=r"^areas\[1\]: prefix '3706' GAS is already served by 'a' \(areas\[0\]\)$"):
        ServiceAreaTable("1", rows)


prefixes = st.sampled_from(["37", "370", "3706", "37068", "370685", "370602", "3715", "371502", "11", "1101"])
rows = st.lists(
    st.tuples(prefixes, st.sampled_from(shipped_services().codes), st.sampled_from(["u1", "u2", "u3"])),
    unique_by=lambda row: (row[0], row[1]),
)


@given(rows, st.sampled_from(["370685", "370602", "370611", "371502", "110101", "120101"]))
def test_lookup_agrees_with_a_longest_prefix_scan(rows: list[tuple[str, Service, str]], region: str) -> None:
    """The indexed lookup returns what a scan for the longest matching prefix would."""
    table = ServiceAreaTable("1", tuple(ServiceArea(utility, prefix, (service,)) for prefix, service, utility in rows))
    for service in shipped_services().codes:
        matches = [(len(p), u) for p, s, u in rows if s == service and region.startswith(p)]
        assert (max(matches)[1] if matches else None) == table.utility_for(region, service)


def test_a_table_survives_pickling_into_a_worker_process(demo: ServiceAreaTable) -> None:
    """Stage workers receive the table pickled: the copy answers every lookup as the original does."""
    copy = pickle.loads(pickle.dumps(demo))  # noqa: S301 - our own bytes, as between stage and worker
    sites = [(area.region_prefix.ljust(6, "0"), service) for area in demo.areas for service in shipped_services().codes]
    assert [copy.utility_for(*site) for site in sites] == [demo.utility_for(*site) for site in sites]
    assert copy == demo
