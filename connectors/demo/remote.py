"""The demo's handle on the simulators: a child process, driven over their ``/_sim/*`` control endpoints.

Running the outside parties in a process of their own keeps them from competing with ubridge for one
interpreter lock, so the demo's and the benchmarks' latencies are ubridge's, not the simulators'.
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class Received:
    """A task as the utility's business system stored it."""

    task_id: str
    received_at: datetime


@dataclass(frozen=True)
class Stats:
    """A utility simulator's counters."""

    requests: int
    unique: int
    repeats: int
    faults_injected: int
    rejected: int
    revisions: int
    superseded: int
    key_conflicts: int


class RemoteUtility:
    """One simulated utility business system."""

    def __init__(self, utility_id: str, url: str) -> None:
        self.utility_id = utility_id
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=30)

    def stats(self) -> Stats:
        """Requests, unique tasks, idempotent repeats, injected faults, rejections, revisions applied or not."""
        return Stats(**self._http.get("/_sim/stats").raise_for_status().json())

    def tasks(self) -> list[Received]:
        """Every unique task, in arrival order."""
        tasks = self._http.get("/_sim/tasks").raise_for_status().json()["tasks"]
        return [Received(t["task_id"], datetime.fromisoformat(t["received_at"])) for t in tasks]

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault plan (no arguments: no faults)."""
        self._http.post("/_sim/faults", json=faults).raise_for_status()

    def set_progress(self, **plan: Any) -> None:
        """Make new tasks move through their stages, reported by callback (see the simulator's set_progress)."""
        self._http.post("/_sim/progress", json=plan).raise_for_status()

    def answer_surveys(self, **plan: Any) -> None:
        """Make the utility answer joint-survey proposals (see the simulator's SurveyDesk.configure)."""
        self._http.post("/_sim/survey-answers", json=plan).raise_for_status()

    def survey_notices(self) -> int:
        """How many survey notices the utility kept."""
        return len(self._http.get("/_sim/surveys").raise_for_status().json()["notices"])

    def task_bodies(self) -> dict[str, dict[str, Any]]:
        """Task id → the body of the revision held."""
        tasks = self._http.get("/_sim/tasks").raise_for_status().json()["tasks"]
        return {t["task_id"]: t["body"] for t in tasks}

    def statuses(self) -> list[dict[str, Any]]:
        """Every status the utility reported, in the order of its change feed."""
        statuses: list[dict[str, Any]] = self._http.get("/_sim/task-status").raise_for_status().json()["statuses"]
        return statuses

    def permit_notices(self) -> dict[str, list[dict[str, Any]]]:
        """Permit id → the notices of its states ubridge sent the utility, in order."""
        seen: dict[str, list[dict[str, Any]]] = {}
        for notice in self._http.get("/_sim/permit-notices").raise_for_status().json()["notices"]:
            seen.setdefault(notice["permit_id"], []).append(notice)
        return seen


class RemoteApproval:
    """The simulated approval system."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=60)

    def generate(self, n_events: int, *, invalid_rate: float, unserved_rate: float) -> list[dict[str, Any]]:
        """Publish ``n_events`` new events upstream; returns them."""
        body = {"events": n_events, "invalid_rate": invalid_rate, "unserved_rate": unserved_rate}
        events: list[dict[str, Any]] = self._http.post("/_sim/generate", json=body).raise_for_status().json()["events"]
        return events

    def events(self) -> list[dict[str, Any]]:
        """Every event published so far (the ground truth)."""
        events: list[dict[str, Any]] = self._http.get("/_sim/events").raise_for_status().json()["events"]
        return events

    def script_permit(self, permit_id: str, steps: tuple[tuple[str, str | None], ...]) -> None:
        """The steps its department will take on ``permit_id`` once submitted."""
        body = {"permit_id": permit_id, "steps": [list(step) for step in steps]}
        self._http.post("/_sim/permits/script-permit", json=body).raise_for_status()

    def permits(self) -> list[dict[str, Any]]:
        """Every permit the departments hold, with its history of states."""
        permits: list[dict[str, Any]] = self._http.get("/_sim/permits").raise_for_status().json()["permits"]
        return permits


class Simulators:
    """The child process hosting the approval system and the utilities."""

    def __init__(self, utilities: dict[str, str], *, seed: int, exchange_db: str | None = None) -> None:
        command = [sys.executable, "-m", "simulators", "--approval-seed", str(seed)]
        if exchange_db is not None:
            command += ["--exchange-db", exchange_db, "--withdraw-rate", "0.02", "--out-of-order-rate", "0.05"]
        for utility, token in utilities.items():
            command += ["--utility", f"{utility}={token}"]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own module
        assert self._process.stdout is not None  # noqa: S101 - requested above
        line = self._process.stdout.readline()
        if not line:
            message = f"the simulators exited with code {self._process.wait()} before announcing their URLs"
            raise RuntimeError(message)
        urls = json.loads(line)
        self.approval = RemoteApproval(urls["approval"])
        self.utilities = {u: RemoteUtility(u, url) for u, url in urls["utilities"].items()}

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        self._process.terminate()
        self._process.wait(timeout=30)
        if self._process.stdout is not None:
            self._process.stdout.close()
