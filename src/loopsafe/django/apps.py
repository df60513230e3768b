"""The Django app: add ``"loopsafe.django"`` to ``INSTALLED_APPS``.

At start-up it applies ``settings.LOOPSAFE`` (pool bounds, ``PATCH_AUTH``),
checks how ``PASSWORD_HASHERS`` uses `loopsafe.django.hashers`, measures what
one hash of the preferred hasher costs (a scaled-down hash, milliseconds),
follows later changes of that setting, and registers loopsafe's system checks
(tag ``loopsafe``).
"""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["LoopsafeConfig"]


class LoopsafeConfig(AppConfig):
    """loopsafe's app config (label ``loopsafe``)."""

    name = "loopsafe.django"
    label = "loopsafe"
    verbose_name = "loopsafe"
    default = True

    def ready(self) -> None:
        """Apply LOOPSAFE, listen for changes to it, and register the checks."""
        from django.core import checks
        from django.core.signals import setting_changed

        from loopsafe.django import _route, conf
        from loopsafe.django import checks as loopsafe_checks
        from loopsafe.django.hashers import check_password_hashers

        conf.apply(conf.get_settings())
        check_password_hashers()  # the bare-hash readers: a mistake fails start-up
        # One scaled-down hash (milliseconds), before any request: the cost each
        # password call passes, so a cold pool refuses a burst it cannot serve.
        _route.estimate_cost()
        setting_changed.connect(
            conf.setting_changed_receiver, dispatch_uid="loopsafe.django.conf.setting_changed"
        )
        for check in loopsafe_checks.ALL_CHECKS:
            checks.register(check, loopsafe_checks.TAG)
