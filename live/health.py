"""`GET /healthz` for load balancers and process managers: can this process serve spectators?"""

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

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
