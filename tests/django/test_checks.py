"""loopsafe's system checks fire with the right ids, and stay quiet when all is well."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings
from django.utils.version import get_complete_version

from loopsafe.django import checks as loopsafe_checks

DJANGO_VERSION = get_complete_version()

DJANGO_BACKEND = "django.contrib.auth.backends.ModelBackend"
OURS = "loopsafe.django.backends.ModelBackend"


def ids(**kwargs):
    """Ids of the messages loopsafe's checks give now."""
    messages = checks.run_checks(tags=[loopsafe_checks.TAG], **kwargs)
    return sorted(m.id for m in messages)


def only(check_id):
    """Messages with this id (Django's checks are not run)."""
    return [m for m in checks.run_checks(tags=[loopsafe_checks.TAG]) if m.id == check_id]


def test_checks_are_registered_with_the_tag():
    """Every loopsafe check is registered under the 'loopsafe' tag."""
    registered = checks.registry.registry.get_checks()
    for check in loopsafe_checks.ALL_CHECKS:
        assert check in registered
        assert loopsafe_checks.TAG in check.tags


def test_test_project_has_only_the_user_model_warning():
    """With loopsafe's backend and middleware, only W002 (stock User.acheck_password) remains."""
    expected = ["loopsafe.W002"] if DJANGO_VERSION >= (5, 0) else []
    assert ids() == expected


def test_w001_django_backend_blocks():
    """Django's ModelBackend without the patch: W001 with a hint naming both fixes."""
    with override_settings(AUTHENTICATION_BACKENDS=[DJANGO_BACKEND]):
        [message] = only("loopsafe.W001")
    assert DJANGO_BACKEND in message.msg
    assert OURS in message.hint
    if DJANGO_VERSION >= (5, 0):
        assert "PATCH_AUTH" in message.hint


def test_w001_subclass_inheriting_django_aauthenticate_blocks():
    """A subclass of Django's backend that inherits its aauthenticate is reported too."""
    path = "django.contrib.auth.backends.AllowAllUsersModelBackend"
    with override_settings(AUTHENTICATION_BACKENDS=[path]):
        [message] = only("loopsafe.W001")
    assert path in message.msg


@pytest.mark.skipif(DJANGO_VERSION < (5, 0), reason="Django 4.2 has nothing to patch")
def test_w001_and_w002_silenced_by_the_patch():
    """PATCH_AUTH on: neither W001 nor W002."""
    with override_settings(AUTHENTICATION_BACKENDS=[DJANGO_BACKEND], LOOPSAFE={"PATCH_AUTH": True}):
        assert ids() == []


def test_w001_ignores_custom_backends():
    """A backend that is not a ModelBackend cannot be judged: no warning."""
    with override_settings(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.BaseBackend"]):
        assert only("loopsafe.W001") == []


def test_w003_plain_bcrypt_with_bcrypt_5():
    """Plain BCryptPasswordHasher with bcrypt >= 5 warns; bcrypt-SHA256 does not."""
    bcrypt = pytest.importorskip("bcrypt")
    plain = "django.contrib.auth.hashers.BCryptPasswordHasher"
    sha = "django.contrib.auth.hashers.BCryptSHA256PasswordHasher"
    with override_settings(PASSWORD_HASHERS=[sha, plain]):
        messages = only("loopsafe.W003")
    if int(bcrypt.__version__.split(".")[0]) >= 5:
        [message] = messages
        assert message.obj == plain
        assert "72 bytes" in message.msg
    else:
        assert messages == []
    with override_settings(PASSWORD_HASHERS=[sha]):
        assert only("loopsafe.W003") == []


def test_w004_memory_share(monkeypatch):
    """Argon2 x workers above a quarter of the memory limit warns; a roomy limit does not."""
    argon2 = "django.contrib.auth.hashers.Argon2PasswordHasher"
    with override_settings(PASSWORD_HASHERS=[argon2], LOOPSAFE={"MAX_WORKERS": 4}):
        monkeypatch.setattr(loopsafe_checks, "process_memory_limit", lambda: 1024**3)
        [message] = only("loopsafe.W004")
        assert "400 MiB" in message.msg
        monkeypatch.setattr(loopsafe_checks, "process_memory_limit", lambda: 64 * 1024**3)
        assert only("loopsafe.W004") == []


def test_hasher_memory_estimates():
    """Argon2 needs memory_cost KiB; scrypt 128*r*N bytes; PBKDF2 none."""
    from django.contrib.auth import hashers

    assert loopsafe_checks.hasher_memory(hashers.Argon2PasswordHasher) == 102400 * 1024
    scrypt = hashers.ScryptPasswordHasher
    # The V array (128 r N) and the p blocks (128 r p): 16 MiB and a little at Django's defaults.
    expected = 128 * scrypt.block_size * (scrypt.work_factor + scrypt.parallelism)
    assert loopsafe_checks.hasher_memory(scrypt) == expected
    assert 16 * 1024 * 1024 < expected < 17 * 1024 * 1024
    assert loopsafe_checks.hasher_memory(hashers.PBKDF2PasswordHasher) == 0
    assert loopsafe_checks.process_memory_limit() > 0


def test_w005_unknown_keys_with_a_suggestion():
    """An unknown LOOPSAFE key warns, with the closest known key as the hint."""
    with override_settings(LOOPSAFE={"MAX_WORKER": 2, "PATCH_AUTH": False}):
        [message] = only("loopsafe.W005")
    assert "'MAX_WORKER'" in message.msg
    assert "MAX_WORKERS" in message.hint


def test_w006_missing_middleware():
    """Without OverloadMiddleware in MIDDLEWARE: W006."""
    with override_settings(MIDDLEWARE=[]):
        [message] = only("loopsafe.W006")
    assert "OverloadMiddleware" in message.hint


def test_w002_mixin_user_model_is_fine():
    """A user model with AsyncPasswordMixin does not get W002."""
    with override_settings(AUTH_USER_MODEL="testproject.MixinUser"):
        assert only("loopsafe.W002") == []


def test_every_message_has_an_id_and_a_hint():
    """All warnings at once carry loopsafe ids and hints."""
    with override_settings(
        AUTHENTICATION_BACKENDS=[DJANGO_BACKEND],
        MIDDLEWARE=[],
        LOOPSAFE={"MAX_WORKR": 1},
    ):
        messages = checks.run_checks(tags=[loopsafe_checks.TAG])
    assert {m.id for m in messages} >= {"loopsafe.W001", "loopsafe.W005", "loopsafe.W006"}
    for message in messages:
        assert message.id.startswith("loopsafe.W")
        assert message.hint
        assert message.level == checks.WARNING
