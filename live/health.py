"""Endpoints for operations: `GET /healthz` (can this process serve spectators?) and `/metrics`."""

import asyncio
import hmac
import logging
import os

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

logger = logging.getLogger(__name__)

# A probe must answer well within a load balancer's own timeout (nginx: 60 s, AWS: 5 s).
CHECK_TIMEOUT = 2.0
HEALTH_GROUP = "healthz"


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def check_channel_layer() -> None:
    # A group_send reaches the broker (a PUBLISH, or the core layer's sorted-set reads)
    # while nobody listens to this group.
    await get_channel_layer().group_send(HEALTH_GROUP, {"type": "health.check"})


async def run_check(name: str, check) -> str:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means "unavailable"
        logger.warning("health check failed: %s (%s: %s)", name, type(exc).__name__, exc)
        return "unavailable"
    return "ok"


@never_cache
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the channel layer answer, else 503; the body says which failed."""
    checks = {
        "database": await run_check("database", sync_to_async(check_database)),
        "channel_layer": await run_check("channel_layer", check_channel_layer),
    }
    healthy = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (live/delivery/metrics.py), for the configured addresses or a token.

    Anyone else gets the same 404 as any unknown page: the endpoint is not advertised.
    """
    token = settings.LIVE_METRICS_TOKEN
    authorization = request.headers.get("Authorization", "")
    allowed = request.META.get("REMOTE_ADDR") in settings.LIVE_METRICS_ALLOWED_IPS or (
        token and hmac.compare_digest(authorization, f"Bearer {token}")
    )
    if not allowed:
        raise Http404
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
