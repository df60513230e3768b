"""The routes: ``POST /login``, ``GET /health``, and ``GET /lag`` (the server's loop lag)."""

from __future__ import annotations

from django.urls import path

from e2eproject import views

urlpatterns = [
    path("login", views.login),
    path("health", views.health),
    path("lag", views.lag),
]
