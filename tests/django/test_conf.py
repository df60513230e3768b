"""``settings.LOOPSAFE``: validation, defaults, and ``setting_changed`` reconfiguring the pool."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import loopsafe
from loopsafe.django import conf


def test_test_settings_are_applied_at_startup():
    """The app's ready() built the default pool from the test project's LOOPSAFE."""
    pool = loopsafe.default_pool()
    assert (pool.max_workers, pool.max_queue_wait, pool.max_pending) == (2, None, 1024)


def test_defaults_without_the_setting():
    """An absent LOOPSAFE means every default, and no pool change at startup."""
    with override_settings():
        from django.conf import settings

        del settings.LOOPSAFE
        config = conf.get_settings()
    assert config == conf.LoopsafeSettings()
    assert not config.explicit
    assert config.pool_settings[0] == loopsafe.usable_cpus()


def test_setting_changed_reconfigures_the_pool_and_back():
    """Overriding LOOPSAFE sets the default pool's bounds in place; leaving it restores them."""
    old = loopsafe.default_pool()
    with override_settings(LOOPSAFE={"MAX_WORKERS": 1, "MAX_QUEUE_WAIT": 0.25, "MAX_PENDING": 7}):
        new = loopsafe.default_pool()
        assert new is old  # reconfigured, not replaced: counters and listeners go on
        assert not old.closed
        assert (new.max_workers, new.max_queue_wait, new.max_pending) == (1, 0.25, 7)
    restored = loopsafe.default_pool()
    assert (restored.max_workers, restored.max_queue_wait, restored.max_pending) == (2, None, 1024)


def test_unchanged_pool_settings_keep_the_pool():
    """Re-applying the same bounds (only PATCH_AUTH changed) keeps the same pool object."""
    pool = loopsafe.default_pool()
    with override_settings(
        LOOPSAFE={"MAX_WORKERS": 2, "MAX_QUEUE_WAIT": None, "MAX_PENDING": 1024, "PATCH_AUTH": True}
    ):
        assert loopsafe.default_pool() is pool
    assert loopsafe.default_pool() is pool


def test_nice_reaches_the_pool():
    """LOOPSAFE["NICE"] rebuilds the pool with that priority drop; the default is 10."""
    assert loopsafe.default_pool().nice == 10
    with override_settings(LOOPSAFE={"NICE": 0}):
        assert loopsafe.default_pool().nice == 0
    assert loopsafe.default_pool().nice == 10


def test_other_settings_do_not_touch_the_pool():
    """A change to another setting leaves the pool alone."""
    pool = loopsafe.default_pool()
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        assert loopsafe.default_pool() is pool


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param([("MAX_WORKERS", 2)], "must be a dict", id="not-a-dict"),
        pytest.param({"MAX_WORKERS": 0}, "MAX_WORKERS", id="zero-workers"),
        pytest.param({"MAX_WORKERS": "2"}, "MAX_WORKERS", id="workers-as-text"),
        pytest.param({"MAX_WORKERS": True}, "MAX_WORKERS", id="workers-as-bool"),
        pytest.param({"MAX_QUEUE_WAIT": 0}, "MAX_QUEUE_WAIT", id="zero-wait"),
        pytest.param({"MAX_QUEUE_WAIT": -1.5}, "MAX_QUEUE_WAIT", id="negative-wait"),
        pytest.param({"MAX_QUEUE_WAIT": "1s"}, "MAX_QUEUE_WAIT", id="wait-as-text"),
        pytest.param({"MAX_PENDING": None}, "MAX_PENDING", id="pending-none"),
        pytest.param({"MAX_PENDING": 2.5}, "MAX_PENDING", id="pending-float"),
        pytest.param({"NICE": 20}, "NICE", id="nice-above-19"),
        pytest.param({"NICE": -5}, "NICE", id="nice-negative"),
        pytest.param({"NICE": "10"}, "NICE", id="nice-as-text"),
        pytest.param({"NICE": False}, "NICE", id="nice-as-bool"),
        pytest.param({"PATCH_AUTH": "yes"}, "PATCH_AUTH", id="patch-as-text"),
        pytest.param({"PATCH_AUTH": 1}, "PATCH_AUTH", id="patch-as-int"),
    ],
)
def test_invalid_values_raise_improperly_configured(raw, message):
    """A bad value raises ImproperlyConfigured naming the key (no silent fallback)."""
    with pytest.raises(ImproperlyConfigured, match=message), override_settings(LOOPSAFE=raw):
        pass  # pragma: no cover - the override itself raises


def test_valid_values_are_normalised():
    """Integers for MAX_QUEUE_WAIT become floats; None keeps its meaning."""
    config = conf._parse({"MAX_QUEUE_WAIT": 2, "MAX_WORKERS": None})
    assert config.max_queue_wait == 2.0
    assert isinstance(config.max_queue_wait, float)
    assert config.max_workers is None
    assert config.explicit


def test_unknown_keys_are_kept_for_the_check_not_raised():
    """Unknown keys do not stop Django; they are listed for loopsafe.W005."""
    config = conf._parse({"MAX_WORKER": 4, "PATCH_AUTH": False})
    assert config.unknown_keys == ("MAX_WORKER",)
    assert conf.suggestion("MAX_WORKER") == "MAX_WORKERS"
    assert conf.suggestion("zzz") is None
