"""The routes: ``POST /login``, ``GET /health``, ``GET /lag`` (loop lag) and ``GET /metrics``."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from e2eproject import views

urlpatterns = [
    path("login", views.login),
    path("health", views.health),
    path("lag", views.lag),
]

if settings.MODE == "loopsafe":
    # Metrics as docs/deploying.md says: one collector per process, served by
    # loopsafe's async view (host-wide whichever worker answers).
    from loopsafe.prometheus import django_view, register

    register()
    urlpatterns.append(path("metrics", django_view()))
