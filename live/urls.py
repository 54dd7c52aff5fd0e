from django.urls import path

from live import health, views

app_name = "live"

urlpatterns = [
    path("", views.board_list, name="board_list"),
    path("boards/<slug:slug>/", views.board_page, name="board"),
    path("boards/<slug:slug>/embed/", views.board_embed, name="board_embed"),
    path("boards/<slug:slug>/history/", views.board_history_page, name="board_history"),
    path("api/boards/<slug:slug>/", views.board_api, name="board_api"),
    path("api/boards/<slug:slug>/history/", views.board_history_api, name="board_history_api"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
]
