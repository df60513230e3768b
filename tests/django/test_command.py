"""``manage.py loopsafe_check`` prints the pool, the patch, the backends and measured costs."""

from __future__ import annotations

import io
import re

from django.core.management import call_command
from django.test import override_settings
from django.utils.version import get_complete_version

from loopsafe import usable_cpus
from loopsafe._limits import container_limits

DJANGO_VERSION = get_complete_version()


def run(*args):
    """Run the command and return what it printed."""
    out = io.StringIO()
    call_command("loopsafe_check", *args, stdout=out)
    return out.getvalue()


def test_prints_pool_backends_hashers_and_costs():
    """The report names the pool's bounds, the backend, each hasher with a measured cost."""
    text = run("--repeat", "1")
    assert "max_workers=2 max_queue_wait=none max_pending=1024" in text
    assert "PATCH_AUTH  off" in text
    assert f"limits      {container_limits().describe()}" in text
    assert "loopsafe.django.backends.ModelBackend  [loopsafe: hashes on the pool]" in text
    assert re.search(r"pbkdf2_sha256 +TestPBKDF2PasswordHasher +iterations=100000", text)
    assert re.search(r"cpu [0-9.]+ ms, wall [0-9.]+ ms, capacity [0-9.]+ hashes/s", text)
    assert "md5" in text
    assert "checks" in text


def test_names_the_kdf_backend_and_the_hashers_loopsafe_computes():
    """The report says which backend computes PBKDF2 and scrypt, and marks stock hashers."""
    from loopsafe.hashers import kdf_backends

    text = run("--no-measure")
    choices = kdf_backends()
    assert f"kdf         PBKDF2: {choices['pbkdf2'].describe()}" in text
    assert f"            scrypt: {choices['scrypt'].describe()}" in text
    assert re.search(r"TestPBKDF2PasswordHasher +iterations=100000 \[computed by loopsafe\]", text)
    assert not re.search(r"MD5PasswordHasher.*computed by loopsafe", text)


def test_no_measure_and_patch_on():
    """--no-measure hashes nothing; with PATCH_AUTH the patched names are listed."""
    with override_settings(
        LOOPSAFE={"PATCH_AUTH": True},
        AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"],
    ):
        text = run("--no-measure")
    assert "not measured" in text
    assert "cpu " not in text
    if DJANGO_VERSION >= (5, 0):
        assert "PATCH_AUTH  on: django.contrib.auth" in text
        assert "[Django's, patched by PATCH_AUTH]" in text


def test_reports_check_warnings_and_unavailable_hashers():
    """Warnings of loopsafe's checks are printed with hints; a broken hasher is named."""
    with override_settings(
        MIDDLEWARE=[],
        PASSWORD_HASHERS=[
            "testproject.hashers.TestPBKDF2PasswordHasher",
            "testproject.hashers.NoSuchHasher",
        ],
    ):
        text = run("--repeat", "1")
    assert "loopsafe.W006" in text
    assert "hint:" in text
    assert "NoSuchHasher: cannot import" in text


def test_notes_argon2_lanes_beyond_the_cpus():
    """Stock Argon2 gets no lanes note (loopsafe computes it); one with its own methods does."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"]):
        text = run("--no-measure")
    assert re.search(r"argon2 +Argon2PasswordHasher +time_cost=\d+ memory_cost=102400", text)
    assert "Argon2 lanes on" not in text
    with override_settings(PASSWORD_HASHERS=["testproject.hashers.OwnEncodeArgon2PasswordHasher"]):
        text = run("--no-measure")
    cpus = usable_cpus()
    noted = f"note: 8 Argon2 lanes on {cpus} usable CPUs" in text
    assert noted == (cpus < 8)
    if noted:
        assert f"parallelism={cpus}" in text


def test_limits_line_names_an_explicit_max_workers():
    """With MAX_WORKERS set, the limits line says the setting wins over what was detected."""
    with override_settings(LOOPSAFE={"MAX_WORKERS": 7}):
        text = run("--no-measure")
    assert "max_workers=7" in text
    assert "MAX_WORKERS=7 is set: it wins over the limits" in text
