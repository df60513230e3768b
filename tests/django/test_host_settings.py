"""``LOOPSAFE["HOST_LIMIT"]``, ``HOST_KEY`` and ``MAX_MEMORY``: validation naming the setting."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from loopsafe.django import conf


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("HOST_LIMIT", 0, id="host-limit-zero"),
        pytest.param("HOST_LIMIT", -1, id="host-limit-negative"),
        pytest.param("HOST_LIMIT", 2.5, id="host-limit-float"),
        pytest.param("HOST_LIMIT", "banana", id="host-limit-word"),
        pytest.param("HOST_KEY", "a/b", id="host-key-path"),
        pytest.param("MAX_MEMORY", 0, id="max-memory-zero"),
    ],
)
def test_bad_value_names_the_setting(key, value):
    """A bad HOST_LIMIT, HOST_KEY or MAX_MEMORY raises ImproperlyConfigured naming the key."""
    with pytest.raises(ImproperlyConfigured, match=key):
        conf._parse({key: value})


def test_auto_and_memory_are_read():
    """HOST_LIMIT "auto" is the usable CPUs; MAX_MEMORY is kept in bytes."""
    from loopsafe import usable_cpus

    parsed = conf._parse({"HOST_LIMIT": "auto", "HOST_KEY": "site", "MAX_MEMORY": 2**30})
    assert parsed.host_settings == (usable_cpus(), "site", 2**30)


def test_unset_host_limit_follows_the_environment(monkeypatch):
    """Without HOST_LIMIT, LOOPSAFE_HOST_LIMIT decides, as for the default pool."""
    monkeypatch.setenv("LOOPSAFE_HOST_LIMIT", "3")
    limit, key, _ = conf._parse({}).host_settings
    assert limit == 3
    assert key is not None


def test_host_limit_setting_reaches_the_default_pool(tmp_path, monkeypatch):
    """LOOPSAFE HOST_LIMIT/HOST_KEY/MAX_MEMORY give the default pool its host budget, and back."""
    from django.test import override_settings

    from loopsafe import default_pool

    monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("LOOPSAFE_HOST_LIMIT", raising=False)
    with override_settings(
        LOOPSAFE={"HOST_LIMIT": 2, "HOST_KEY": "django-test", "MAX_MEMORY": 2**30}
    ):
        pool = default_pool()
        assert (pool.host_limit, pool.host_key, pool.max_memory) == (2, "django-test", 2**30)
    assert default_pool().host_limit is None
