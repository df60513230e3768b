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
    }

Every key is optional. The app applies them when Django starts (its
``ready()``) and again whenever the setting changes (``override_settings`` in
tests sends ``setting_changed``): the loopsafe default pool's bounds are set
with `loopsafe.configure` when a pool key changed, and ``PATCH_AUTH`` patches or
unpatches Django. An invalid value raises ``ImproperlyConfigured`` right then,
so a typo cannot go unnoticed under an ASGI server, which runs no system
checks; an unknown key is reported by the ``loopsafe.W005`` check.
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from django.core.exceptions import ImproperlyConfigured

from loopsafe._default import configure, default_pool
from loopsafe._runtime_dir import check_host_key, default_host_key
from loopsafe._settings import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_QUEUE_WAIT,
    DEFAULT_NICE,
    MAX_NICE,
    _checked_host_limit,
    host_limit_from_env,
    usable_cpus,
)
from loopsafe.django import _client, _patch

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULTS",
    "LoopsafeSettings",
    "apply",
    "get_settings",
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
}


@dataclass(frozen=True)
class LoopsafeSettings:
    """``settings.LOOPSAFE``, validated, with defaults filled in.

    Attributes:
        max_workers: Hashes that run at once (None: the usable CPUs).
        max_queue_wait: Longest estimated queue wait in seconds before
            `loopsafe.Overloaded` (None: no wait-based limit).
        max_pending: Most calls waiting in the queue.
        nice: How much the hashing threads' nice value is raised (0-19).
        patch_auth: Whether stock ``django.contrib.auth`` is patched.
        client_key: ``request -> key`` naming the client a request hashes for
            (a callable or its dotted path; None: no keys, first come first
            served). Default: the address Django sees (``REMOTE_ADDR``).
        host_limit: Hashes at once across the host's processes with the key
            (None: ``LOOPSAFE_HOST_LIMIT`` if set, else no host budget).
        host_key: The host budget's key (None: the default key).
        max_memory: Bytes the running hashes may declare together (None: no bound).
        explicit: Whether ``settings.LOOPSAFE`` is set at all.
        unknown_keys: Keys that loopsafe does not know (typos), sorted.
    """

    max_workers: int | None = None
    max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT
    max_pending: int = DEFAULT_MAX_PENDING
    nice: int = DEFAULT_NICE
    patch_auth: bool = False
    client_key: str | Callable[..., object] | None = "loopsafe.django.client_address"
    host_limit: int | None = None
    host_key: str | None = None
    max_memory: int | None = None
    explicit: bool = False
    unknown_keys: tuple[str, ...] = ()

    @property
    def pool_settings(self) -> tuple[int, float | None, int, int]:
        """``(max_workers, max_queue_wait, max_pending, nice)`` with max_workers resolved."""
        workers = usable_cpus() if self.max_workers is None else self.max_workers
        return workers, self.max_queue_wait, self.max_pending, self.nice

    @property
    def host_settings(self) -> tuple[int | None, str | None, int | None]:
        """``(host_limit, host_key, max_memory)`` as the default pool would have them."""
        limit = host_limit_from_env() if self.host_limit is None else self.host_limit
        key = None if limit is None else (self.host_key or default_host_key())
        return limit, key, self.max_memory


def _invalid(key: str, expected: str, value: object) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"LOOPSAFE[{key!r}] must be {expected}, not {type(value).__name__} {value!r}."
    )


def _positive_int(key: str, value: object, expected: str = "a positive int") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(key, expected, value)
    return value


def _parse(raw: object) -> LoopsafeSettings:
    if raw is None:
        return LoopsafeSettings()
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(
            f"settings.LOOPSAFE must be a dict, not {type(raw).__name__}; see loopsafe.django.conf."
        )
    values = {**DEFAULTS, **raw}
    wait = values["MAX_QUEUE_WAIT"]
    if wait is not None and (
        isinstance(wait, bool) or not isinstance(wait, (int, float)) or not wait > 0
    ):
        raise _invalid("MAX_QUEUE_WAIT", "a positive number of seconds or None", wait)
    patch_auth = values["PATCH_AUTH"]
    if not isinstance(patch_auth, bool):
        raise _invalid("PATCH_AUTH", "True or False", patch_auth)
    client_key = values["CLIENT_KEY"]
    if client_key is not None and not isinstance(client_key, str) and not callable(client_key):
        raise _invalid("CLIENT_KEY", "a callable, its dotted path, or None", client_key)
    workers = values["MAX_WORKERS"]
    nice = values["NICE"]
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= MAX_NICE:
        raise _invalid("NICE", f"an int from 0 to {MAX_NICE}", nice)
    host_limit = values["HOST_LIMIT"]
    try:
        host_limit = _checked_host_limit(host_limit, "LOOPSAFE['HOST_LIMIT']")
    except (TypeError, ValueError):
        raise _invalid("HOST_LIMIT", "a positive int, 'auto' or None", host_limit) from None
    try:
        host_key = None if values["HOST_KEY"] is None else check_host_key(values["HOST_KEY"])
    except (TypeError, ValueError) as exc:
        raise _invalid("HOST_KEY", f"None or a key ({exc})", values["HOST_KEY"]) from None
    max_memory = values["MAX_MEMORY"]
    if max_memory is not None:
        max_memory = _positive_int("MAX_MEMORY", max_memory, "a positive int (bytes) or None")
    return LoopsafeSettings(
        max_workers=None
        if workers is None
        else _positive_int("MAX_WORKERS", workers, "a positive int or None"),
        max_queue_wait=None if wait is None else float(wait),
        max_pending=_positive_int("MAX_PENDING", values["MAX_PENDING"]),
        nice=nice,
        patch_auth=patch_auth,
        client_key=client_key,
        host_limit=host_limit,
        host_key=host_key,
        max_memory=max_memory,
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
        wanted = config.host_settings
        if (config.explicit or reconcile_pool) and (
            current != config.pool_settings or host != wanted
        ):
            _, wait, pending, nice = config.pool_settings
            limit, key, memory = wanted
            # None, not the resolved count: a default-sized pool follows the container's limit.
            configure(
                config.max_workers,
                max_queue_wait=wait,
                max_pending=pending,
                nice=nice,
                host_limit=limit,
                host_key=key,
                max_memory=memory,
            )
        _client.configure(config.client_key)
        if config.patch_auth:
            _patch.patch()
        else:
            _patch.unpatch()


def setting_changed_receiver(*, setting: str, **kwargs: Any) -> None:  # noqa: ARG001 - Django's signal
    """Re-apply ``LOOPSAFE`` when it changes (``override_settings``, ``modify_settings``)."""
    if setting == "LOOPSAFE":
        apply(get_settings(), reconcile_pool=True)
