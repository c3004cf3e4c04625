"""The demo's external-works permits: utilities file them through ubridge, the departments decide in parallel.

Once the utilities have worked through their tasks, each task whose utility reported external works (外线工程)
gets a permit application, filed by the utility's business system (the demo, with the utility's callback
token) at ``POST /v1/permits``: road excavation always, and planning, tree felling or green space by a seeded
draw, dated when the utility reported the works. The approval simulator's departments work them: the road desk
asks for the route drawing (补正) on every third application, the greening desk refuses some tree fellings. The
follower reads the decisions back, and each utility is told every state. The summary's line counts what flowed.
"""

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from connectors.demo.remote import RemoteApproval, RemoteUtility
from connectors.permits.intake import PATH
from routing.permits import DECIDED, KINDS, application_id, permit_id

MAX_APPLICATIONS = 16
EXTRA_KINDS = tuple(k for k in KINDS if k not in ("ROAD_EXCAVATION", "ROAD_OCCUPATION"))
Steps = tuple[tuple[str, str | None], ...]
# how the departments decide, by application in turn: granted; the road desk asks for its route drawing first;
# the greening desk refuses a tree felling
_OUTCOMES: tuple[Steps, ...] = (
    (("ACCEPTED", None), ("GRANTED", None)),
    (("MORE_REQUIRED", "缺少管线路由图"), ("ACCEPTED", None), ("GRANTED", None)),
    (("ACCEPTED", None), ("REFUSED", "占用古树保护范围")),
)
_STEPS: dict[tuple[str, int], Steps] = {("ROAD_EXCAVATION", 1): _OUTCOMES[1], ("TREE_FELLING", 2): _OUTCOMES[2]}


@dataclass(frozen=True)
class Filed:
    """One application filed: its utility, the permit ids it asked for."""

    utility: str
    permits: tuple[str, ...]


class DemoPermits:
    """Files the demo's permit applications and tells what became of them."""

    def __init__(self, approval: RemoteApproval, *, seed: int, approval_token: str) -> None:
        self._approval = approval
        self._seed = seed
        self._token = approval_token
        self.filed: list[Filed] = []
        self.refused = 0

    def section(self, port: int, calendar: str) -> dict[str, Any]:
        """The ``permits`` section of the demo's configuration, its intake on ``port``."""
        return {
            "intake": {"port": port},
            "approval": {"url": self._approval.url, "token": self._token, "timeout_s": 5},
            "calendar": calendar,
            "poll_interval_s": 0.3,
            "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 1.0, "max_attempts": 30},
        }

    def file(self, utilities: dict[str, RemoteUtility], *, port: int, token_of: Callable[[str], str]) -> None:
        """File an application for each task (at most MAX_APPLICATIONS) whose utility reported external works."""
        rng = random.Random(self._seed)  # noqa: S311 - a reproducible draw, not a secret
        url = f"http://127.0.0.1:{port}{PATH}"
        candidates = [(u, sim, report) for u, sim in utilities.items() for report in _external_works(sim)]
        bodies = {u: sim.task_bodies() for u, sim in utilities.items()}
        for index, (utility, _, report) in enumerate(candidates[:MAX_APPLICATIONS]):
            task = bodies[utility][report["task_id"]]
            kinds = ["ROAD_EXCAVATION", *sorted(set(rng.sample(EXTRA_KINDS, rng.randint(0, 2))))]
            number = f"WQ-{index:04d}"
            for kind in kinds:
                steps = _STEPS.get((kind, index % len(_OUTCOMES)), _OUTCOMES[0])
                self._approval.script_permit(permit_id(application_id(utility, number), kind), steps)
            body = {
                "application_no": number,
                "task_id": report["task_id"],
                "project_code": task["project_code"],
                "region_code": task["region_code"],
                "kinds": kinds,
                "pipe_length_m": report.get("pipe_length_m") or rng.randint(60, 600),
                "route": f"{task.get('site_address') or '地块'} 至 市政管网接驳点",
                "filed_at": report["occurred_at"],
            }
            headers = {"Authorization": f"Bearer {token_of(utility)}"}
            response = httpx.post(url, json=body, headers=headers, timeout=30)
            if response.status_code != 202:  # noqa: PLR2004 - HTTP
                self.refused += 1
                continue
            answer = response.json()
            self.filed.append(Filed(utility, tuple(f"{answer['application_id']}:{k}" for k in kinds)))

    def settled(self, utilities: dict[str, RemoteUtility]) -> bool:
        """Every permit filed is decided, and its utility was told so."""
        told = {u: utilities[u].permit_notices() for u in {f.utility for f in self.filed}}
        return all(_decision(told[f.utility].get(p, [])) is not None for f in self.filed for p in f.permits)

    def line(self, utilities: dict[str, RemoteUtility]) -> str:
        """The summary's line: what was filed, where it went, what the departments decided, who was told."""
        told = {u: utilities[u].permit_notices() for u in {f.utility for f in self.filed}}
        permits = {p: f.utility for f in self.filed for p in f.permits}
        desk = {p["permit_id"]: p for p in self._approval.permits()}
        decisions = [_decision(told[u].get(p, [])) for p, u in permits.items()]
        finals = Counter("UNDECIDED" if d is None else d["state"] for d in decisions)
        on_time = sum(1 for d in decisions if d is not None and _on_time(d))
        asked = sum(1 for p in permits if p in desk and any(s == "MORE_REQUIRED" for s, _ in desk[p]["history"]))
        notices = sum(len(states) for by_permit in told.values() for states in by_permit.values())
        departments = len({desk[p]["department"] for p in permits if p in desk})
        return (
            f"external-works permits: {len(self.filed)} applications filed through ubridge "
            f"({self.refused} refused), {len(permits)} permits to {departments} departments at once (并联审批): "
            f"{finals['GRANTED']} granted, {finals['REFUSED']} refused, {asked} asked for more (补正), "
            f"{finals['COMMITTED']} 告知承诺, {on_time} decided within the departments' working days "
            f"(3个工作日内办结); the utilities were told {notices} states"
        )


def _external_works(sim: RemoteUtility) -> list[dict[str, Any]]:
    """The utility's EXTERNAL_WORKS reports, one per task, in the order reported."""
    seen: dict[str, dict[str, Any]] = {}
    for report in sim.statuses():
        if report["stage"] == "EXTERNAL_WORKS" and report["task_id"] not in seen:
            seen[report["task_id"]] = report
    return list(seen.values())


def _decision(notices: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The notice of the permit's decision (GRANTED, REFUSED, or its 告知承诺), if it came."""
    decided = [notice for notice in notices if notice["state"] in DECIDED]
    return decided[-1] if decided else None


def _on_time(notice: dict[str, Any]) -> bool:
    """Whether the decision came by the department's deadline (a 告知承诺 has none, and no wait)."""
    due = notice["due_at"]
    return due is None or datetime.fromisoformat(notice["occurred_at"]) <= datetime.fromisoformat(due)
