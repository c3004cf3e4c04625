"""``ubridge openapi``: the OpenAPI document of every HTTP surface, generated from the pydantic models.

The document is the one each port serves at ``GET /openapi.json`` (each port serves its own part of it):
the 工改 webhook, the 爱山东 gateway, the status callbacks, and ``/metrics``, ``/healthz``, ``/readyz``. The
committed copy, ``deploy/openapi.json``, is checked against :func:`document` by the tests::

    ubridge openapi                     # rewrite deploy/openapi.json
    ubridge openapi --output -          # print it
    ubridge openapi --check             # exit 1 when the committed copy differs
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from fastapi import Request, Response
from prometheus_client import CollectorRegistry

from connectors.admin.api import admin_router
from connectors.admin.service import AdminService
from connectors.aishandong.gateway import ROUTE as GATEWAY_ROUTE
from connectors.aishandong.settings import AishandongGatewaySettings
from connectors.gonggai.webhook import ROUTE as WEBHOOK_ROUTE
from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.payments.gateway import ROUTE as PAYMENTS_ROUTE
from connectors.payments.settings import PaymentGatewaySettings
from connectors.permits.intake import ROUTE as PERMIT_ROUTE
from connectors.permits.intake import STAGE as PERMIT_STAGE
from connectors.runtime.health import health_router
from connectors.runtime.http_intake import intake_router
from connectors.runtime.web_app import build_app
from connectors.settings import parse_settings
from connectors.status.callback import ROUTE as CALLBACK_ROUTE
from connectors.status.callback import STAGE as CALLBACK_STAGE
from connectors.surveys.intake import ROUTE as SURVEY_ROUTE
from connectors.surveys.intake import STAGE as SURVEY_STAGE

COMMITTED: Final = Path(__file__).parents[1] / "deploy" / "openapi.json"
DESCRIPTION: Final = (
    "Every HTTP surface of a ubridge process. Each intake listens on its own port (sources.gonggai_webhook.port, "
    "sources.aishandong_gateway.port, status_callbacks.port, permits.intake.port, surveys.intake.port); "
    "/metrics, /healthz and /readyz on observability.metrics_port; the admin API (/admin/v1, bearer AdminToken) "
    "on admin.port. Every answer "
    "that is not a success is JSON: {error, field?, index?}; a 500 carries an error_id to quote."
)


async def _documentation_only(request: Request) -> Response:  # pragma: no cover - never served
    return Response(status_code=501)


def document() -> dict[str, Any]:
    """The OpenAPI document of all of ubridge's HTTP operations."""
    parts = [
        intake_router(GonggaiWebhookSettings.model_fields["name"].default, (WEBHOOK_ROUTE,), _documentation_only),
        intake_router(AishandongGatewaySettings.model_fields["name"].default, (GATEWAY_ROUTE,), _documentation_only),
        intake_router(PaymentGatewaySettings.model_fields["name"].default, (PAYMENTS_ROUTE,), _documentation_only),
        intake_router(CALLBACK_STAGE, (CALLBACK_ROUTE,), _documentation_only),
        intake_router(PERMIT_STAGE, (PERMIT_ROUTE,), _documentation_only),
        intake_router(SURVEY_STAGE, (SURVEY_ROUTE,), _documentation_only),
        health_router(CollectorRegistry(), dict, dict),
        # the admin routes are described, not served: the service behind them is never called here
        admin_router(AdminService(parse_settings({"routing": {"service_areas": "-"}}), stale_after_s=1), {}),
    ]
    return build_app(parts, description=DESCRIPTION).openapi()


def render() -> str:
    """:func:`document` as the committed file holds it."""
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``ubridge openapi``."""
    command = sub.add_parser("openapi", help="write the OpenAPI document generated from the API's models")
    command.add_argument("--output", default=str(COMMITTED), help="file to write, or - for standard output")
    command.add_argument("--check", action="store_true", help="exit 1 when --output differs from the generated one")
    command.set_defaults(func=_openapi)


def _openapi(args: argparse.Namespace) -> int:
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `ubridge openapi`", file=sys.stderr)
            return 1
        print(f"{path}: up to date")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
