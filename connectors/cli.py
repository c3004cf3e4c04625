"""The ``ubridge`` command.

::

    ubridge broker start|stop|status        a local single-node Kafka for the demo and tests
    ubridge run --config ubridge.yaml       run every configured stage (or --stage NAME ...)
    ubridge config check ubridge.yaml       check a configuration and the files it names; list its stages
    ubridge tail TOPIC                      print a topic's records decoded, as JSON lines
    ubridge tasks show TASK_ID              a task's stage timeline against its time limits
    ubridge migrate tasks-topics --config …  the upgrade to one task topic per utility (see README)
    ubridge acl plan|apply --config …       least-privilege Kafka ACLs per stage and utility principal
    ubridge calendar show [YEAR]            a year's days off and make-up days: official, overridden, provisional
    ubridge admin stages|pause|resume|restart|dlq|offsets   operate a running installation (the admin API)
    ubridge demo [--events N] [--exit]      everything, locally, with simulated outside parties
    ubridge openapi [--check]               write deploy/openapi.json, generated from the API's models
"""

import argparse
import os
import sys
from pathlib import Path

import structlog

from connectors import calendar_cli, openapi
from connectors.acl import cli as acl_cli
from connectors.admin import cli as admin_cli
from connectors.broker import cli as broker_cli
from connectors.complaints import cli as complaints_cli
from connectors.config_check import Report, check_configuration
from connectors.demo import cli as demo_cli
from connectors.ledger import show as tasks_cli
from connectors.migrate import cli as migrate_cli
from connectors.registry import stage_specs
from connectors.run import run as run_stages
from connectors.runtime.kafka import make_consumer
from connectors.runtime.logs import configure_logging
from connectors.runtime.schema_registry import SchemaRegistryError, codec_for
from connectors.settings import ConfigError, KafkaSettings, Settings, load_settings
from connectors.supervision import cli as report_cli
from connectors.tail import dumps, follow, render
from schemas import Codec

log = structlog.get_logger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ubridge`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    code: int = args.func(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ubridge", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(title="commands")
    broker_cli.register(sub)
    demo_cli.register(sub)
    tasks_cli.register(sub)
    calendar_cli.register(sub)
    openapi.register(sub)
    admin_cli.register(sub)
    report_cli.register(sub)
    migrate_cli.register(sub)
    acl_cli.register(sub)
    complaints_cli.register(sub)

    run = sub.add_parser("run", help="run the configured stages until SIGTERM")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--stage", action="append", dest="stages", metavar="NAME", help="run only this stage (repeatable)")
    run.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # started by a parent ubridge run
    run.set_defaults(func=_run)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(title="config commands")
    check = config_sub.add_parser("check", help="check a configuration and every file it names (exit 1 on errors)")
    check.add_argument("path", type=Path)
    check.set_defaults(func=_config_check)

    tail = sub.add_parser("tail", help="print a topic's records decoded, as JSON lines")
    tail.add_argument("topic")
    tail.add_argument("--config", type=Path, help="take the bootstrap address from this configuration")
    tail.add_argument("--bootstrap", help="host:port (default: $KAFKA_BOOTSTRAP or 127.0.0.1:9092)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record, not the newest")
    tail.add_argument("--max", type=int, default=None, help="stop after this many records")
    tail.add_argument("--idle-timeout-s", type=float, default=None, help="stop after this long without records")
    tail.add_argument("--unmasked", action="store_true", help="show phone and ID numbers in clear")
    tail.set_defaults(func=_tail)
    return parser


def _load(path: Path) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"ubridge: invalid configuration\n{exc}", file=sys.stderr)
        return None


def _checked(report: Report) -> Settings | None:
    """Print every problem, one line each, on stderr; the settings if none is an error."""
    errors = report.errors()
    if errors:
        print("ubridge: invalid configuration", file=sys.stderr)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    return None if errors else report.settings


def _run(args: argparse.Namespace) -> int:
    settings = _checked(check_configuration(args.config, stages=args.stages, process_ports=not args.child))
    if settings is None:
        return 2
    obs = settings.observability
    configure_logging(json=obs.log_format == "json", level=obs.log_level)
    return run_stages(settings, args.config, stages=args.stages, child=args.child)


def _config_check(args: argparse.Namespace) -> int:
    report = check_configuration(args.path)
    settings = _checked(report)
    if settings is None:
        print(f"{args.path}: {len(report.errors())} error(s)", file=sys.stderr)
        return 1
    warnings = len(report.problems)
    print(f"{args.path}: valid" + (f", {warnings} warning(s)" if warnings else ""))
    for spec in stage_specs(settings):
        print(f"  stage {spec.name}")
    return 0


def _tail(args: argparse.Namespace) -> int:
    configure_logging(json=False, level="warning")
    kafka = KafkaSettings(bootstrap=args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    codec = Codec.default()
    if args.config is not None:
        settings = _load(args.config)
        if settings is None:
            return 2
        kafka = settings.kafka
        try:
            codec = codec_for(settings)
        except SchemaRegistryError as exc:
            print(f"ubridge: {exc}", file=sys.stderr)
            return 2
    consumer = make_consumer(kafka, group_id=None)
    try:
        records = follow(consumer, args.topic, from_beginning=args.from_beginning, idle_timeout_s=args.idle_timeout_s)
        for count, record in enumerate(records, start=1):
            print(dumps(render(record, codec, masked=not args.unmasked)), flush=True)
            if args.max is not None and count >= args.max:
                break
    except LookupError as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
        codec.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
