"""``ubridge config check``: everything ``ubridge run`` would fail on, found before it starts.

The check loads the configuration and every file it refers to through the same validated models the stages
use, then checks what no single file can: that each utility of the service areas has a ``utilities[]`` entry
(else its tasks are never delivered), that endpoint URLs can be requested, and that the ports the process
would listen on are free and distinct. Every problem names its file and key; errors fail the check, warnings
are printed and pass.

Example:
    >>> url_problem("htp://crm.water.example.cn/v1/tasks")
    "scheme 'htp' is not http or https; did you mean 'http'?"
"""

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from connectors.aishandong.rules import ApplicationRulesFile
from connectors.config_ports import Probe, bind_problem, listeners, port_clashes, port_problems
from connectors.config_problems import FileUnusable, Problem, from_message, from_validation, read_document
from connectors.settings import ConfigError, Settings, parse_settings
from routing.calendar import parse_calendar
from routing.complaints import ComplaintPolicy
from routing.mapping import parse_mapping
from routing.satisfaction import SatisfactionPolicy
from routing.service_areas import ServiceAreaTable, parse_service_areas
from routing.sla_policy import PolicyBook
from routing.spelling import did_you_mean
from routing.spgl_dialects import DEFAULT_DIALECTS, Dialects

Parser = Callable[[Any, str], object]
FileKind = Literal[
    "service_areas", "mapping", "dialects", "rules", "calendar", "policies", "complaint_policy", "satisfaction"
]

_SCHEMES: Final = ("http", "https")
_MAX_PORT: Final = 65535
_ID_CUTOFF: Final = 0.85  # utility ids share city and service words: suggest only a near-identical one


@dataclass(frozen=True, slots=True)
class Reference:
    """A file the configuration names: the key naming it, the path, and which parser reads it."""

    key: str
    path: Path
    kind: FileKind


@dataclass
class Report:
    """The validated settings (None if the file itself is invalid) and every problem found."""

    settings: Settings | None
    problems: list[Problem] = field(default_factory=list)

    def errors(self) -> list[Problem]:
        """The problems that stop ``run``."""
        return [problem for problem in self.problems if problem.severity == "error"]


def check_configuration(
    path: Path, *, stages: Collection[str] | None = None, probe: Probe | None = None, process_ports: bool = True
) -> Report:
    """Check a configuration file and everything it refers to.

    Args:
        path: The ``ubridge.yaml``.
        stages: Only these stages will run (``run --stage``): ports of other stages are not probed.
        probe: Says why a host and port cannot be listened on, or None; default: try to bind it.
        process_ports: Probe the process's own ports (metrics, admin) too; a child of ``ubridge run`` does
            not listen on them: its parent does.
    """
    settings, problems = load_checked(path)
    if settings is None:
        return Report(None, problems)
    file = str(path)
    # A file read by two stages (the calendar) is reported once, at the first key naming it.
    parsed: dict[tuple[Path, FileKind], object] = {}
    for reference in referenced_files(settings):
        if (reference.path, reference.kind) not in parsed:
            parsed[reference.path, reference.kind], found = check_file(reference, referenced_from=file)
            problems += found
    areas = parsed.get((settings.routing.service_areas, "service_areas"))
    if isinstance(areas, ServiceAreaTable):
        problems += utility_problems(settings, areas, file=file, areas_file=str(settings.routing.service_areas))
    problems += url_problems(settings, file)
    every = listeners(settings)
    wanted = [
        item for item in every if (process_ports if item.stage is None else stages is None or item.stage in stages)
    ]
    problems += port_clashes(every, file)
    problems += port_problems(wanted, file, probe or bind_problem)
    return Report(settings, problems)


def load_checked(path: Path) -> tuple[Settings | None, list[Problem]]:
    """The settings of ``path``, or None with every bad key of it."""
    file = str(path)
    try:
        document = read_document(path, referenced_from=file, key="")
    except FileUnusable as exc:
        return None, [exc.problem]
    try:
        return parse_settings(document, origin=file, base_dir=path.parent), []
    except ConfigError as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            return None, from_validation(cause, file, Settings)
        return None, from_message(str(exc), file)


def referenced_files(settings: Settings) -> list[Reference]:
    """Every file the enabled parts of the configuration read at start-up."""
    sources = settings.sources
    refs = [Reference("routing.service_areas", settings.routing.service_areas, "service_areas")]
    interface, webhook, spgl = sources.gonggai_interface, sources.gonggai_webhook, sources.gonggai_spgl
    if interface is not None and interface.enabled and interface.mapping is not None:
        refs.append(Reference("sources.gonggai_interface.mapping", interface.mapping, "mapping"))
    if webhook is not None and webhook.enabled:
        refs.append(Reference("sources.gonggai_webhook.mapping", webhook.mapping, "mapping"))
    if spgl is not None and spgl.enabled:
        refs.append(Reference("sources.gonggai_spgl.dialects", spgl.dialects or DEFAULT_DIALECTS, "dialects"))
    if sources.aishandong_gateway is not None:
        refs.append(Reference("sources.aishandong_gateway.rules", sources.aishandong_gateway.rules, "rules"))
    if sources.aishandong_pull is not None and sources.aishandong_pull.enabled:
        refs.append(Reference("sources.aishandong_pull.rules", sources.aishandong_pull.rules, "rules"))
    if settings.applications is not None and settings.applications.enabled:
        refs.append(Reference("applications.calendar", settings.applications.calendar, "calendar"))
        refs.append(Reference("applications.rules", settings.applications.rules, "rules"))
    if settings.ledger is not None and settings.ledger.enabled:
        refs.append(Reference("ledger.calendar", settings.ledger.calendar, "calendar"))
        refs.append(Reference("ledger.policies", settings.ledger.policies, "policies"))
    if settings.complaints is not None and settings.complaints.enabled:
        refs.append(Reference("complaints.policy", settings.complaints.policy, "complaint_policy"))
        refs.append(Reference("complaints.satisfaction", settings.complaints.satisfaction, "satisfaction"))
        refs.append(Reference("complaints.calendar", settings.complaints.calendar, "calendar"))
    return refs


def check_file(reference: Reference, *, referenced_from: str) -> tuple[object | None, list[Problem]]:
    """Read and validate one referenced file as the stage using it does: its value, or None and why not."""
    origin = str(reference.path)
    try:
        document = read_document(reference.path, referenced_from=referenced_from, key=reference.key)
    except FileUnusable as exc:
        return None, [exc.problem]
    model = _MODELS.get(reference.kind)
    if model is not None:
        try:
            return model.model_validate(document), []
        except ValidationError as exc:
            return None, from_validation(exc, origin, model)
    try:
        return _PARSERS[reference.kind](document, origin), []
    except ValueError as exc:
        return None, from_message(str(exc), origin)


def utility_problems(settings: Settings, areas: ServiceAreaTable, *, file: str, areas_file: str) -> list[Problem]:
    """A service area whose utility has no ``utilities[]`` entry (error), a utility serving no area (warning)."""
    configured = [utility.id for utility in settings.utilities]
    problems = [
        Problem(
            areas_file,
            f"areas[{i}].utility",
            f"{area.utility!r} has no entry in utilities[] of {file}: its tasks would never be delivered"
            + did_you_mean(area.utility, configured, cutoff=_ID_CUTOFF),
        )
        for i, area in enumerate(areas.areas)
        if area.utility not in configured
    ]
    served = areas.utilities()
    problems += [
        Problem(
            file,
            f"utilities[{i}].id",
            f"{utility!r} serves no area of {areas_file}: it will never get a task"
            + did_you_mean(utility, served, cutoff=_ID_CUTOFF),
            severity="warning",
        )
        for i, utility in enumerate(configured)
        if utility not in served
    ]
    return problems


def url_problems(settings: Settings, file: str) -> list[Problem]:
    """Every endpoint URL that cannot be requested (a wrong scheme, no host, a bad port), and a bad bootstrap."""
    problems = [Problem(file, key, reason) for key, url in _urls(settings) if (reason := url_problem(url))]
    spgl = settings.sources.gonggai_spgl
    if spgl is not None and spgl.enabled and (reason := database_url_problem(spgl.url.get_secret_value())):
        problems.append(Problem(file, "sources.gonggai_spgl.url", reason))
    for i, address in enumerate(settings.kafka.bootstrap.split(",")):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= _MAX_PORT:
            problems.append(Problem(file, "kafka.bootstrap", f"entry {i + 1} {address.strip()!r} is not host:port"))
    return problems


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be requested over HTTP, or None. The URL itself is not repeated: it may hold a secret."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in _SCHEMES:
        return f"scheme {parts.scheme!r} is not http or https" + did_you_mean(parts.scheme, _SCHEMES)
    try:
        port = parts.port
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if not parts.hostname:
        return "names no host (expected http(s)://host[:port]/path)"
    if port == 0:
        return "port 0 cannot be requested"
    return None


def database_url_problem(url: str) -> str | None:
    """Why SQLAlchemy could not open ``url``, without connecting; the URL is not repeated (it holds a password)."""
    try:
        make_url(url).get_dialect().import_dbapi()
    except NoSuchModuleError as exc:  # before its base class, ArgumentError
        return f"names a database or driver SQLAlchemy does not know ({exc})"
    except ArgumentError:
        return "is not a SQLAlchemy URL (e.g. postgresql+psycopg://user@host/spgl or sqlite:///exchange.db)"
    except ImportError as exc:
        return f"its database driver is not installed ({exc})"
    return None


def _urls(settings: Settings) -> Iterator[tuple[str, str]]:
    sources = settings.sources
    if sources.gonggai_interface is not None and sources.gonggai_interface.enabled:
        yield "sources.gonggai_interface.base_url", sources.gonggai_interface.base_url
    if sources.aishandong_pull is not None and sources.aishandong_pull.enabled:
        yield "sources.aishandong_pull.base_url", sources.aishandong_pull.base_url
    if settings.applications is not None and settings.applications.project_lookup is not None:
        yield "applications.project_lookup.base_url", settings.applications.project_lookup.base_url
    for i, utility in enumerate(settings.utilities):
        yield f"utilities[{i}].endpoint", utility.endpoint
        if utility.status_poll is not None and utility.status_poll.enabled:
            yield f"utilities[{i}].status_poll.base_url", utility.status_poll.base_url


_MODELS: Final[dict[FileKind, type[BaseModel]]] = {
    "policies": PolicyBook,
    "rules": ApplicationRulesFile,
    "dialects": Dialects,
    "complaint_policy": ComplaintPolicy,
    "satisfaction": SatisfactionPolicy,
}
_PARSERS: Final[dict[FileKind, Parser]] = {
    "service_areas": lambda document, origin: parse_service_areas(document, origin=origin),
    "mapping": lambda document, origin: parse_mapping(document, origin=origin),
    "calendar": lambda document, origin: parse_calendar(document, origin=origin),
}
