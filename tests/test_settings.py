"""`PoolSettings`: one frozen value, checked once, every problem in one message, no pool built."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest

import loopsafe
from loopsafe import HashPool, PoolSettings, configure, default_pool
from loopsafe._pool import _live_pools


@pytest.fixture(autouse=True)
def _no_host_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv("LOOPSAFE_HOST_LIMIT", raising=False)


def test_defaults_are_the_pools_defaults():
    """PoolSettings() holds what HashPool() gets without arguments."""
    settings = PoolSettings()
    pool = HashPool(name="settings-defaults")
    try:
        assert (settings.max_queue_wait, settings.max_pending, settings.nice) == (
            pool.max_queue_wait,
            pool.max_pending,
            pool.nice,
        )
        assert settings.max_workers is None
        assert (settings.host_limit, settings.host_key, settings.max_memory) == (None, None, None)
        assert settings.monitor_lag is False
    finally:
        pool.close()


def test_frozen_equal_and_hashable():
    """Equal settings compare equal and hash alike; they cannot be changed in place."""
    one = PoolSettings(max_workers=2, max_queue_wait=0.5)
    assert one == PoolSettings(max_workers=2, max_queue_wait=0.5)
    assert len({one, PoolSettings(max_workers=2, max_queue_wait=0.5)}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.max_workers = 3  # type: ignore[misc]


def test_replace_checks_again():
    """dataclasses.replace makes a changed copy through the same checks."""
    base = PoolSettings(max_workers=2)
    assert dataclasses.replace(base, nice=0).nice == 0
    with pytest.raises(ValueError, match="nice"):
        dataclasses.replace(base, nice=42)


def test_values_are_normalised():
    """An int wait becomes a float; "auto" becomes the usable CPUs."""
    settings = PoolSettings(max_queue_wait=2, host_limit="auto")
    assert settings.max_queue_wait == 2.0
    assert isinstance(settings.max_queue_wait, float)
    assert settings.host_limit == loopsafe.usable_cpus()


@pytest.mark.parametrize(
    ("settings", "error", "named"),
    [
        pytest.param({"max_queue_wait": math.inf}, ValueError, "max_queue_wait", id="inf-wait"),
        pytest.param({"max_queue_wait": math.nan}, ValueError, "max_queue_wait", id="nan-wait"),
        pytest.param({"max_queue_wait": -1.0}, ValueError, "max_queue_wait", id="negative-wait"),
        pytest.param({"max_queue_wait": True}, TypeError, "max_queue_wait", id="bool-wait"),
        pytest.param({"max_workers": True}, TypeError, "max_workers", id="bool-workers"),
        pytest.param({"max_workers": 0}, ValueError, "max_workers", id="zero-workers"),
        pytest.param({"max_workers": 2.0}, TypeError, "max_workers", id="float-workers"),
        pytest.param({"max_pending": -3}, ValueError, "max_pending", id="negative-pending"),
        pytest.param({"nice": 20}, ValueError, "nice", id="nice-above-19"),
        pytest.param({"nice": False}, TypeError, "nice", id="bool-nice"),
        pytest.param({"host_limit": "many"}, ValueError, "host_limit", id="host-limit-word"),
        pytest.param({"host_limit": 0}, ValueError, "host_limit", id="host-limit-zero"),
        pytest.param({"host_key": "a/b"}, ValueError, "host_key", id="host-key-path"),
        pytest.param({"host_key": 7}, TypeError, "host_key", id="host-key-int"),
        pytest.param({"max_memory": math.inf}, TypeError, "max_memory", id="inf-memory"),
        pytest.param({"max_memory": 0}, ValueError, "max_memory", id="zero-memory"),
        pytest.param({"monitor_lag": 1}, TypeError, "monitor_lag", id="int-monitor-lag"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(settings, error, named):
    """Wrong types raise TypeError, bad values ValueError; the message names the setting."""
    with pytest.raises(error, match=named):
        PoolSettings(**settings)


def test_every_problem_is_reported_at_once():
    """Three bad settings: one exception listing all three (TypeError, since one is a type)."""
    with pytest.raises(TypeError) as caught:
        PoolSettings(max_workers=0, max_queue_wait=math.inf, nice="10")  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("3 invalid loopsafe settings")
    for name in ("max_workers", "max_queue_wait", "nice"):
        assert name in message


def test_values_only_bad_is_a_value_error():
    """Several out-of-range values and no wrong type: a ValueError listing each."""
    with pytest.raises(ValueError, match=r"max_workers.*max_pending"):
        PoolSettings(max_workers=0, max_pending=0)


def test_checking_builds_no_pool_and_starts_no_thread():
    """Making settings, good or bad, registers no pool and starts no thread."""
    pools, threads = len(_live_pools), threading.active_count()
    PoolSettings(max_workers=3, host_limit=None, max_memory=2**30)
    with pytest.raises(ValueError, match="max_queue_wait"):
        PoolSettings(max_queue_wait=math.inf)
    assert (len(_live_pools), threading.active_count()) == (pools, threads)


def test_bad_configure_leaves_the_default_pool_alone():
    """configure() with a bad setting changes nothing and builds no throwaway pool."""
    pool = default_pool()
    before = (pool.max_workers, pool.max_queue_wait)
    pools = len(_live_pools)
    with pytest.raises(ValueError, match="max_queue_wait"):
        configure(max_queue_wait=math.nan)
    assert default_pool() is pool
    assert (pool.max_workers, pool.max_queue_wait) == before
    assert len(_live_pools) == pools


class TestFromEnv:
    """PoolSettings.from_env reads LOOPSAFE_HOST_LIMIT."""

    def test_reads_the_host_limit(self, monkeypatch):
        """LOOPSAFE_HOST_LIMIT=3 gives host_limit=3."""
        monkeypatch.setenv("LOOPSAFE_HOST_LIMIT", "3")
        assert PoolSettings.from_env(max_workers=2).host_limit == 3

    def test_a_given_host_limit_wins(self, monkeypatch):
        """A host_limit passed to from_env is used, not the variable."""
        monkeypatch.setenv("LOOPSAFE_HOST_LIMIT", "3")
        assert PoolSettings.from_env(host_limit=5).host_limit == 5

    def test_unset_is_no_host_budget(self):
        """Without the variable there is no host budget."""
        assert PoolSettings.from_env().host_limit is None

    def test_a_bad_variable_is_named_with_the_other_problems(self, monkeypatch):
        """A bad LOOPSAFE_HOST_LIMIT is reported by name, in one message with the rest."""
        monkeypatch.setenv("LOOPSAFE_HOST_LIMIT", "lots")
        with pytest.raises(ValueError, match=r"LOOPSAFE_HOST_LIMIT.*max_pending"):
            PoolSettings.from_env(max_pending=0)


class TestWhereSettingsGo:
    """HashPool and configure take the value whole."""

    def test_hash_pool_takes_settings(self):
        """HashPool(settings=...) has exactly those settings."""
        settings = PoolSettings(max_workers=2, max_queue_wait=0.25, max_pending=7, nice=0)
        pool = HashPool(settings=settings, name="settings-pool")
        try:
            assert (pool.max_workers, pool.max_queue_wait, pool.max_pending, pool.nice) == (
                2,
                0.25,
                7,
                0,
            )
        finally:
            pool.close()

    def test_settings_and_a_keyword_together_are_refused(self):
        """Passing settings= and a separate keyword is a TypeError naming the keyword."""
        with pytest.raises(TypeError, match=r"not both \(max_workers\)"):
            HashPool(2, settings=PoolSettings(), name="settings-both")

    def test_settings_of_another_type_are_refused(self):
        """settings= takes a PoolSettings only."""
        with pytest.raises(TypeError, match="PoolSettings"):
            HashPool(settings={"max_workers": 2}, name="settings-dict")  # type: ignore[arg-type]

    def test_hash_pool_keywords_report_every_problem(self):
        """HashPool's keywords go through the same checks: every problem in one message."""
        with pytest.raises(ValueError, match=r"max_workers.*nice"):
            HashPool(0, nice=99, name="settings-bad")

    def test_configure_takes_settings_in_place(self):
        """configure(settings=...) changes a live pool's bounds in place when it can."""
        pool = default_pool()
        try:
            same = configure(settings=PoolSettings(max_workers=1, max_queue_wait=0.5))
            assert same is pool
            assert (pool.max_workers, pool.max_queue_wait) == (1, 0.5)
        finally:
            configure()
