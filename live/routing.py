from django.urls import path, re_path

from live.delivery import consumers

websocket_urlpatterns = [
    path("ws/boards/<slug:slug>/", consumers.SpectatorConsumer.as_asgi()),
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]
