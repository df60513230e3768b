"""Settings for Django's own test suite (``tests/runtests.py``) with loopsafe patched in.

Used by ``.ci/django-suite``, which puts this folder on ``PYTHONPATH`` and runs
``runtests.py auth_tests async --settings=loopsafe_suite_settings``. Everything
but the two settings below comes from Django's own ``tests/test_sqlite.py``.

runtests.py replaces ``INSTALLED_APPS`` (and ``MIDDLEWARE``) with its own lists,
so ``"loopsafe.django"`` cannot be installed through them. The test runner
named here (`loopsafe_suite_runner.LoopsafeSuiteRunner`) does instead what
the app's ``ready()`` does: it applies ``LOOPSAFE`` below, in the main process
and in every parallel worker, so Django's async auth runs on loopsafe's pool.
"""

from __future__ import annotations

# Django's own settings for its suite on SQLite, from the extracted tests/
# folder of the same Django version (runtests.py puts it on sys.path).
from test_sqlite import *  # noqa: F403

LOOPSAFE = {
    "PATCH_AUTH": True,
    # Django's tests run hashes one at a time; never refuse one for a slow machine.
    "MAX_QUEUE_WAIT": None,
}

TEST_RUNNER = "loopsafe_suite_runner.LoopsafeSuiteRunner"
