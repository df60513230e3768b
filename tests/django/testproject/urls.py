"""URLs of the test project."""

from __future__ import annotations

from django.urls import path

from testproject import views

urlpatterns = [
    path("login/", views.login),
    path("login-device/", views.login_device),
    path("login-django/", views.login_django),
    path("overloaded/", views.overloaded),
    path("overloaded-sync/", views.overloaded_sync),
    path("health/", views.health),
]
