"""ASGI entry point: Django for HTTP, the spectator consumers for WebSockets and event streams."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard.settings")
# Set up Django (apps, models) before anything imports consumers.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from live.delivery import collector, daphne  # noqa: E402
from live.delivery.auth import SessionAuthMiddleware  # noqa: E402
from live.delivery.guards import ClientAddress, WebSocketGuard, is_trusted_proxy  # noqa: E402
from live.routing import event_stream_urlpatterns, websocket_urlpatterns  # noqa: E402

daphne.install(
    send_buffer_limit=settings.LIVE_SEND_BUFFER_LIMIT,
    header_timeout=settings.LIVE_HEADER_TIMEOUT,
    max_request_body=settings.LIVE_MAX_REQUEST_BODY,
    connections_per_address=settings.LIVE_CONNECTIONS_PER_ADDRESS,
    is_trusted_proxy=is_trusted_proxy,
)

application = ClientAddress(
    ProtocolTypeRouter(
        {
            # Server-Sent Events streams are served by the relay, like WebSockets; the rest by Django.
            "http": URLRouter([*event_stream_urlpatterns, re_path(r"", django_asgi_app)]),
            "websocket": WebSocketGuard(SessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
        }
    )
)

# After everything start-up makes, so that it is frozen out of every later collection.
collector.configure()
