from django.urls import path, re_path

from live.delivery import consumers, events
from live.delivery.auth import SessionAuthMiddleware

websocket_urlpatterns = [
    path("ws/", consumers.MultiplexConsumer.as_asgi()),
    path("ws/boards/<slug:slug>/", consumers.SpectatorConsumer.as_asgi()),
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]

# HTTP routes served before Django (scoreboard/asgi.py): the session tells who watches.
event_stream_urlpatterns = [
    path("events/boards/<slug:slug>/", SessionAuthMiddleware(events.EventStreamConsumer.as_asgi())),
]
