"""The OpenAPI document: generated from the models, committed, and the same as what the intakes serve."""

import json
import threading
from pathlib import Path

import httpx
import pytest

from connectors import openapi
from connectors.cli import main
from tests.unit.connectors.intake_support import Producer, callback_intake, serving


def test_committed_document_is_the_generated_one() -> None:
    """deploy/openapi.json equals what `ubridge openapi` generates: run it after changing a model."""
    assert openapi.COMMITTED.read_text(encoding="utf-8") == openapi.render(), "run `ubridge openapi`"


def test_check_fails_on_a_drifted_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ubridge openapi --check` exits 1 on a copy that differs, and writing it makes the check pass."""
    copy = tmp_path / "openapi.json"
    copy.write_text(openapi.render().replace('"StatusReport"', '"StatusReprot"'), encoding="utf-8")
    assert main(["openapi", "--output", str(copy), "--check"]) == 1
    assert main(["openapi", "--output", str(copy)]) == 0
    assert main(["openapi", "--output", str(copy), "--check"]) == 0
    assert "out of date" in capsys.readouterr().err


def test_served_operations_are_the_documented_ones() -> None:
    """The callback intake serves at /openapi.json exactly the callback operation of the committed document."""
    committed = json.loads(openapi.COMMITTED.read_text(encoding="utf-8"))
    stop = threading.Event()
    intake = callback_intake(Producer(), stop, token="t0ken")
    with serving(intake.run, stop):
        served = httpx.get(f"http://127.0.0.1:{intake.port}/openapi.json").json()
    path = "/v1/tasks/{task_id}/status"
    assert served["paths"][path] == committed["paths"][path]
    assert set(served["paths"]) == {path}


def test_every_refusal_is_documented_with_the_problem_body() -> None:
    """Each documented 4xx/5xx answer of the intakes has the Problem schema: error, field, index."""
    document = openapi.document()
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"error", "field", "index"}
    for path in ("/v1/project-events", "/v1/applications", "/v1/tasks/{task_id}/status"):
        answers = document["paths"][path]["post"]["responses"]
        refusals = {status: answer for status, answer in answers.items() if 400 <= int(status) < 500}
        assert refusals, path
        for answer in refusals.values():
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        internal = answers["500"]["content"]["application/json"]["schema"]
        assert internal == {"$ref": "#/components/schemas/InternalProblem"}
