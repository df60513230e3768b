"""The ``LOOPSAFE`` settings dict: its keys, their defaults, their validation, and applying them.

In ``settings.py``::

    LOOPSAFE = {
        "MAX_WORKERS": None,    # hashes at once; None: the CPUs this process may use
        "MAX_QUEUE_WAIT": 1.0,  # estimated queue wait (s) before Overloaded; None: no limit
        "MAX_PENDING": 1024,    # calls that may wait in the queue
        "NICE": 10,             # lower the hashing threads' CPU priority by this (Linux)
        "PATCH_AUTH": False,    # make stock django.contrib.auth async paths non-blocking
        "CLIENT_KEY": "loopsafe.django.client_address",  # request -> client key; None: no keys
        "HOST_LIMIT": None,     # hashes at once across the host's workers; "auto": the CPUs;
                                # None: $LOOPSAFE_HOST_LIMIT if set, else no host budget
        "HOST_KEY": None,       # which host budget to share; None: user id and program name
        "MAX_MEMORY": None,     # bytes the hashes running may declare together; None: no bound
        # or, in place of the pool keys above, all of them as one value:
        # "POOL": loopsafe.PoolSettings(max_workers=2, max_queue_wait=0.5),
    }

Every key is optional. The app applies them when Django starts (its
``ready()``) and again whenever the setting changes (``override_settings`` in
tests sends ``setting_changed``): the loopsafe default pool's bounds are set
with `loopsafe.configure` when a pool key changed, and ``PATCH_AUTH`` patches or
unpatches Django, and backends whose only ``authenticate`` is synchronous
(django-axes') get an async bridge while loopsafe serves async logins
(`apply_bridge`). An invalid value raises ``ImproperlyConfigured`` right then,
naming every bad key at once, so a typo cannot go unnoticed under an ASGI
server, which runs no system checks; ``loopsafe.E001`` reports the same
problems as system-check errors, and an unknown key is reported by the
``loopsafe.W005`` check. The pool keys are checked by `loopsafe.PoolSettings`
itself, so Django refuses exactly what the pool would (inf, nan, a bool for
an int...).
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from django.core.exceptions import ImproperlyConfigured

from loopsafe._default import configure, default_pool
from loopsafe._runtime_dir import default_host_key
from loopsafe._settings import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_QUEUE_WAIT,
    DEFAULT_NICE,
    DEFAULT_SETTINGS,
    PoolSettings,
    host_limit_from_env,
    settings_problems,
    usable_cpus,
)
from loopsafe.django import _client, _patch, _sync_backends

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULTS",
    "LoopsafeSettings",
    "apply",
    "apply_bridge",
    "get_settings",
    "label",
    "problems",
    "setting_changed_receiver",
    "suggestion",
]

#: Every key of ``settings.LOOPSAFE`` with its default.
DEFAULTS: Final[dict[str, object]] = {
    "MAX_WORKERS": None,
    "MAX_QUEUE_WAIT": DEFAULT_MAX_QUEUE_WAIT,
    "MAX_PENDING": DEFAULT_MAX_PENDING,
    "NICE": DEFAULT_NICE,
    "PATCH_AUTH": False,
    "CLIENT_KEY": "loopsafe.django.client_address",
    "HOST_LIMIT": None,
    "HOST_KEY": None,
    "MAX_MEMORY": None,
    "POOL": None,
}

#: The ``LOOPSAFE`` keys that are `loopsafe.PoolSettings` fields, and the field each sets.
_POOL_KEYS: Final[dict[str, str]] = {
    "MAX_WORKERS": "max_workers",
    "MAX_QUEUE_WAIT": "max_queue_wait",
    "MAX_PENDING": "max_pending",
    "NICE": "nice",
    "HOST_LIMIT": "host_limit",
    "HOST_KEY": "host_key",
    "MAX_MEMORY": "max_memory",
}


@dataclass(frozen=True)
class LoopsafeSettings:
    """``settings.LOOPSAFE``, validated, with defaults filled in.

    Attributes:
        pool: The pool's settings, from ``LOOPSAFE["POOL"]`` or the separate
            keys; ``HOST_LIMIT`` unset reads ``LOOPSAFE_HOST_LIMIT``.
        patch_auth: Whether stock ``django.contrib.auth`` is patched.
        client_key: ``request -> key`` naming the client a request hashes for
            (a callable or its dotted path; None: no keys, first come first
            served). Default: the address Django sees (``REMOTE_ADDR``).
        explicit: Whether ``settings.LOOPSAFE`` is set at all.
        unknown_keys: Keys that loopsafe does not know (typos), sorted.
    """

    pool: PoolSettings = DEFAULT_SETTINGS
    patch_auth: bool = False
    client_key: str | Callable[..., object] | None = "loopsafe.django.client_address"
    explicit: bool = False
    unknown_keys: tuple[str, ...] = ()

    @property
    def max_workers(self) -> int | None:
        """Hashes that run at once (None: the usable CPUs)."""
        return self.pool.max_workers

    @property
    def max_queue_wait(self) -> float | None:
        """Longest estimated queue wait in seconds before `loopsafe.Overloaded`."""
        return self.pool.max_queue_wait

    @property
    def max_pending(self) -> int:
        """Most calls waiting in the queue."""
        return self.pool.max_pending

    @property
    def nice(self) -> int:
        """How much the hashing threads' nice value is raised (0-19)."""
        return self.pool.nice

    @property
    def host_limit(self) -> int | None:
        """Hashes at once across the host (``LOOPSAFE_HOST_LIMIT`` when the key is unset)."""
        return self.pool.host_limit

    @property
    def host_key(self) -> str | None:
        """The host budget's key (None: the default key)."""
        return self.pool.host_key

    @property
    def max_memory(self) -> int | None:
        """Bytes the running hashes may declare together (None: no bound)."""
        return self.pool.max_memory

    @property
    def pool_settings(self) -> tuple[int, float | None, int, int]:
        """``(max_workers, max_queue_wait, max_pending, nice)`` with max_workers resolved."""
        pool = self.pool
        workers = usable_cpus() if pool.max_workers is None else pool.max_workers
        return workers, pool.max_queue_wait, pool.max_pending, pool.nice

    @property
    def host_settings(self) -> tuple[int | None, str | None, int | None]:
        """``(host_limit, host_key, max_memory)`` as the default pool would have them."""
        limit = self.pool.host_limit
        key = None if limit is None else (self.pool.host_key or default_host_key())
        return limit, key, self.pool.max_memory


def problems(raw: object) -> list[tuple[str, str]]:
    """Every invalid value in ``settings.LOOPSAFE``: ``(key, message)`` pairs, the key first.

    What the pool would refuse (inf, nan, a bool for an int, a wrong type...) is
    found here, without building a pool: by `loopsafe.PoolSettings`' own checks.
    """
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [("", f"must be a dict, not {type(raw).__name__}")]
    values = {**DEFAULTS, **raw}
    found: list[tuple[str, str]] = []
    if not isinstance(values["PATCH_AUTH"], bool):
        found.append(("PATCH_AUTH", _wrong("True or False", values["PATCH_AUTH"])))
    client_key = values["CLIENT_KEY"]
    if client_key is not None and not isinstance(client_key, str) and not callable(client_key):
        found.append(("CLIENT_KEY", _wrong("a callable, its dotted path, or None", client_key)))
    given = sorted(key for key in _POOL_KEYS if key in raw)
    if values["POOL"] is not None:
        if not isinstance(values["POOL"], PoolSettings):
            found.append(("POOL", _wrong("a loopsafe.PoolSettings or None", values["POOL"])))
        if given:
            found.append(("POOL", f"set POOL or {', '.join(given)}, not both"))
        return found
    pool_values = {field: values[key] for key, field in _POOL_KEYS.items()}
    fields = {field: key for key, field in _POOL_KEYS.items()}
    env = {} if pool_values["host_limit"] is not None else _env_host_limit(found)
    _, pool_problems = settings_problems({**pool_values, **env})
    found.extend((fields[problem.setting], problem.message) for problem in pool_problems)
    return found


def _env_host_limit(found: list[tuple[str, str]]) -> dict[str, object]:
    try:
        return {"host_limit": host_limit_from_env()}
    except ValueError as exc:
        found.append(("HOST_LIMIT", f"unset, so {exc}"))
        return {}


def _wrong(expected: str, value: object) -> str:
    return f"must be {expected}, not {type(value).__name__} {value!r}"


def label(key: str) -> str:
    """How messages name a key: ``LOOPSAFE['MAX_WORKERS']`` (``settings.LOOPSAFE`` for "")."""
    return f"LOOPSAFE[{key!r}]" if key else "settings.LOOPSAFE"


def _parse(raw: object) -> LoopsafeSettings:
    if raw is None:
        try:
            return LoopsafeSettings(pool=PoolSettings.from_env())
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
    found = problems(raw)
    if found:
        listed = "; ".join(f"{label(key)}: {message}" for key, message in found)
        raise ImproperlyConfigured(f"{listed}. See loopsafe.django.conf.")
    assert isinstance(raw, dict)  # noqa: S101 - problems() reported anything else
    values = {**DEFAULTS, **raw}
    pool = values["POOL"]
    if not isinstance(pool, PoolSettings):
        pool = PoolSettings.from_env(**{field: values[key] for key, field in _POOL_KEYS.items()})
    return LoopsafeSettings(
        pool=pool,
        patch_auth=bool(values["PATCH_AUTH"]),
        client_key=values["CLIENT_KEY"],
        explicit=True,
        unknown_keys=tuple(sorted(str(key) for key in raw if key not in DEFAULTS)),
    )


def get_settings() -> LoopsafeSettings:
    """Read and validate ``settings.LOOPSAFE`` now.

    Raises:
        ImproperlyConfigured: A value is invalid, or LOOPSAFE is not a dict.
    """
    from django.conf import settings

    return _parse(getattr(settings, "LOOPSAFE", None))


def suggestion(key: str) -> str | None:
    """Return the known key closest to an unknown one, if any is close."""
    matches = difflib.get_close_matches(key.upper(), list(DEFAULTS), n=1, cutoff=0.6)
    return matches[0] if matches else None


_apply_lock = threading.Lock()


def apply(config: LoopsafeSettings, *, reconcile_pool: bool = False) -> None:
    """Make the process match ``config``: the default pool's bounds and the patch.

    The default pool is reconfigured (`loopsafe.configure`) only when its bounds
    differ, so applying the same settings twice changes nothing; calls the old
    pool already admitted still finish there. Without ``settings.LOOPSAFE``
    the pool is left as it is (it may have been configured by hand), unless
    ``reconcile_pool`` asks for the defaults (when an override ends).

    Args:
        config: The settings to apply.
        reconcile_pool: Rebuild the pool to match even if LOOPSAFE is unset.
    """
    with _apply_lock:
        pool = default_pool()
        current = (pool.max_workers, pool.max_queue_wait, pool.max_pending, pool.nice)
        host = (pool.host_limit, pool.host_key, pool.max_memory)
        if (config.explicit or reconcile_pool) and (
            current != config.pool_settings or host != config.host_settings
        ):
            # None stays None: a default-sized pool follows the container's limit.
            configure(settings=config.pool)
        _client.configure(config.client_key)
        if config.patch_auth:
            _patch.patch()
        else:
            _patch.unpatch()
        apply_bridge(config)


def apply_bridge(config: LoopsafeSettings) -> None:
    """Bridge synchronous-only backends while loopsafe serves async logins, else unbridge.

    loopsafe serves them when ``PATCH_AUTH`` is on or its ``ModelBackend`` (or
    a subclass) is in ``AUTHENTICATION_BACKENDS``: then Django's own
    ``aauthenticate`` asks django-axes' backends too (`loopsafe.django._sync_backends`).
    """
    from loopsafe.django._passwords import DJANGO_VERSION
    from loopsafe.django.backends import ModelBackend

    if DJANGO_VERSION < (5, 0):
        # No Django aauthenticate to protect; loopsafe's own asks every backend.
        _sync_backends.unbridge()
        return
    classes = [cls for _, cls in _sync_backends.configured_backend_classes()]
    if config.patch_auth or any(issubclass(cls, ModelBackend) for cls in classes):
        _sync_backends.bridge(classes)
    else:
        _sync_backends.unbridge()


def setting_changed_receiver(*, setting: str, **kwargs: Any) -> None:  # noqa: ARG001 - Django's signal
    """Re-apply ``LOOPSAFE`` when it changes (``override_settings``, ``modify_settings``)."""
    if setting == "LOOPSAFE":
        apply(get_settings(), reconcile_pool=True)
    elif setting == "AUTHENTICATION_BACKENDS":
        apply_bridge(get_settings())
