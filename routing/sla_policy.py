"""The SLA rule file (``deploy/config/sla-policies.yaml``) as a validated model, and which rules govern a task.

Every rule states the document and sentence it encodes, what it governs (regions, services, task kinds,
application kinds), the events that start and stop its clock, its unit and counting convention, and its
variants by external pipe length, each with a limit, the document's steps and its exclusions. The file's
header comment documents every key; :func:`load_policies` validates it at start-up.

Example:
    >>> book = load_policies(Path("deploy/config/sla-policies.yaml"))
    >>> [g.rule.id for g in book.governing(kind="APPLICATION", application_kind="CONNECTION", service="WATER",
    ...                                     region_code="370602")]
    ['shandong-000-first-contact', 'yantai-004-connection']
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from routing.records import Service, TaskKind, TaskStage
from routing.regions import PROVINCES, is_known_region
from routing.services import configured_service
from routing.yaml_files import read_yaml

StartEvent = Literal["application_filed", "permit_granted", "received_by_utility", "task_created"]
StopStage = Literal["CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED"]
ExcludedStage = Literal["CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS"]
Unit = Literal["natural_hours", "natural_days", "working_hours", "working_days"]
Exclusion = Literal["design", "construction", "beyond_utility_control", "waiting_for_builder"]
ApplicationKindName = Literal["CONNECTION", "REPAIR", "SUSPENSION", "TRANSFER"]

Positive = Annotated[float, Field(gt=0)]
Text = Annotated[str, Field(min_length=1)]
_PREFIX_DIGITS = (2, 6)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Document(_Strict):
    """A seed document: its title (issuer, number, name)."""

    title: Text


class Counting(_Strict):
    """Whether the start day counts, and the reading chosen where the document is silent."""

    start_day_counts: bool
    reading: Text


class Step(_Strict):
    """One step as the document names it; it ends when the task first reaches ``stops``."""

    name: Text
    stops: StopStage
    limit: Positive | None = None


class Excluded(_Strict):
    """Time the document leaves out; ``clocked_as`` the stage that marks it, or None if no report does yet."""

    what: Exclusion
    clocked_as: ExcludedStage | None
    note: str | None = None


class Variant(_Strict):
    """The limits for external pipes longer than ``pipe_over_m`` and at most ``pipe_up_to_m`` metres."""

    name: Text
    pipe_over_m: Annotated[float, Field(ge=0)] | None = None
    pipe_up_to_m: Annotated[float, Field(ge=0)] | None = None
    limit: Positive | None = None
    steps: tuple[Step, ...] = ()
    exclusions: tuple[Excluded, ...] = ()

    def covers(self, pipe_length_m: float) -> bool:
        """Whether a task with this external pipe (0: none) falls under the variant."""
        above = self.pipe_over_m is None or pipe_length_m > self.pipe_over_m
        return above and (self.pipe_up_to_m is None or pipe_length_m <= self.pipe_up_to_m)

    def excluded_stages(self) -> dict[TaskStage, tuple[str, ...]]:
        """Stage → the exclusions it clocks out (e.g. EXTERNAL_WORKS → design, construction)."""
        stages: dict[TaskStage, tuple[str, ...]] = {}
        for item in self.exclusions:
            if item.clocked_as is not None:
                stages[item.clocked_as] = (*stages.get(item.clocked_as, ()), item.what)
        return stages


class Rule(_Strict):
    """One time limit of one document (see the file's header for every key)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    basis: Literal["seed", "default"]
    document: Text
    quote: Text
    why: str | None = None
    regions: tuple[str, ...] = Field(min_length=1)
    services: tuple[Annotated[Service, AfterValidator(configured_service)], ...] = Field(min_length=1)
    task_kinds: tuple[TaskKind, ...] = Field(min_length=1)
    application_kinds: tuple[ApplicationKindName, ...] | None = None
    starts: StartEvent
    stops: StopStage
    unit: Unit
    counting: Counting
    overrides: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for prefix in self.regions:
            if not _known_prefix(prefix):
                msg = f"regions: {prefix!r} is not the 2-6 digit prefix of a known region"
                raise ValueError(msg)
        if self.basis == "default" and not (self.why or "").strip():
            msg = "why: a default rule must say what it is and where its numbers come from"
            raise ValueError(msg)
        for variant in self.variants:
            if variant.steps and variant.steps[-1].stops != self.stops:
                msg = f"variants.{variant.name}.steps: the last step must stop at the rule's stop {self.stops}"
                raise ValueError(msg)
        return self

    def variant_for(self, pipe_length_m: float | None) -> Variant | None:
        """The first variant covering the pipe (None or 0: no external works), or None."""
        length = pipe_length_m or 0.0
        return next((variant for variant in self.variants if variant.covers(length)), None)


@dataclass(frozen=True)
class Governing:
    """A rule that governs a task, with its citation."""

    rule: Rule
    citation: str


class PolicyBook(_Strict):
    """The whole file: documents, rules, and what applies where no rule does."""

    warning_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.8
    working_time: Text
    uncovered: Text
    documents: dict[str, Document]
    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Self:
        ids = [rule.id for rule in self.rules]
        for i, rule in enumerate(self.rules):
            if rule.id in ids[:i]:
                msg = f"rules[{i}].id: {rule.id!r} is used twice"
                raise ValueError(msg)
            if rule.document not in self.documents:
                msg = f"rules[{i}].document: {rule.document!r} is not under documents"
                raise ValueError(msg)
            unknown = [other for other in rule.overrides if other not in ids]
            if unknown:
                msg = f"rules[{i}].overrides: {unknown} name no rule"
                raise ValueError(msg)
        return self

    def citation(self, rule: Rule) -> str:
        """The rule's source, e.g. ``seed 004 烟台市…实施方案: “具备直接接通条件的…”``."""
        label = "" if rule.basis == "seed" else f"ubridge default ({rule.why}) "
        return f"{label}seed {rule.document} {self.documents[rule.document].title}: “{rule.quote}”"

    def governing(
        self, *, kind: TaskKind, application_kind: str | None, service: Service, region_code: str
    ) -> list[Governing]:
        """The rules that govern a task, in file order (overridden ones dropped)."""
        matching = [
            rule
            for rule in self.rules
            if kind in rule.task_kinds
            and service in rule.services
            and any(region_code.startswith(prefix) for prefix in rule.regions)
            and (rule.application_kinds is None or (application_kind or "CONNECTION") in rule.application_kinds)
        ]
        dropped = {other for rule in matching for other in rule.overrides}
        return [Governing(rule, self.citation(rule)) for rule in matching if rule.id not in dropped]


def _known_prefix(prefix: str) -> bool:
    low, high = _PREFIX_DIGITS
    if not prefix.isdigit() or not low <= len(prefix) <= high or f"{prefix[:2]}0000" not in PROVINCES:
        return False
    return len(prefix) == low or is_known_region(prefix.ljust(6, "0"))


def load_policies(path: Path) -> PolicyBook:
    """Read and validate the SLA rule file.

    Raises:
        OSError: If the file cannot be read.
        ValueError: If it is not valid YAML or not a valid rule file; each line names the file and the key.
    """
    return parse_policies(read_yaml(path), origin=str(path))


def parse_policies(doc: Mapping[str, Any] | Any, *, origin: str = "<memory>") -> PolicyBook:
    """Validate a parsed rule file.

    Raises:
        ValueError: Naming ``origin`` and each bad key, e.g. ``sla-policies.yaml: rules[2].unit: Input should
            be 'natural_hours', …``.
    """
    try:
        return PolicyBook.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for item in exc.errors():
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
            lines.append(f"{origin}: {key or '<top>'}: {item['msg']}")
        raise ValueError("\n".join(lines)) from exc
