"""The test runner for Django's own suite with loopsafe patched in (``.ci/django-suite``).

It does three things on top of Django's ``DiscoverRunner``:

1. Applies ``settings.LOOPSAFE`` (``PATCH_AUTH`` on) the way the app's
   ``ready()`` does, in the main process and in each parallel worker (forked
   workers inherit it; spawned ones apply it again in their initializer), and
   proves it before the first test: a patched ``acheck_password`` must run on
   the loopsafe pool.
2. Skips the tests listed in `SKIPS`, each with its reason, shown in the
   output as skipped: only tests that check how stock Django does the work
   (not what the answer is), which loopsafe replaces on purpose.
3. Counts the calls the loopsafe pool served, in every process, and fails the
   run when it served none although something was patched (the patch would
   not have been in effect). On Django 4.2 nothing is patched: the suite then
   only shows that loopsafe's presence changes nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import unittest
from pathlib import Path

from django.test import runner as django_runner

#: "module.Class.test_method" -> why it legitimately differs under loopsafe.
#: A test is skipped only where it exists (the list covers Django 4.2 to 6.x).
SKIPS = {
    "auth_tests.test_auth_backends.BaseModelBackendTest.test_aauthentication_timing_async_bridge": (
        "asserts that Django's aauthenticate hands the hashing to "
        "asgiref.sync.sync_to_async (it patches django.contrib.auth.hashers."
        "sync_to_async and django.contrib.auth.sync_to_async and expects one call "
        "each); with PATCH_AUTH the same hashing runs on the loopsafe pool instead, "
        "which is the point. The outcome this test guards (the unknown-user path "
        "hashes once, off the loop) is checked by test_aauthentication_timing, "
        "which runs and passes."
    ),
}

_STATS_ENV = "LOOPSAFE_SUITE_STATS"


def _say(line: str) -> None:
    """Print a line of the runner's own report (next to Django's output)."""
    sys.stdout.write(line + "\n")


def _patched_names() -> tuple[str, ...]:
    from loopsafe.django import _patch

    return _patch.patched()


def activate() -> tuple[str, ...]:
    """Apply settings.LOOPSAFE in this process as the app's ready() does; return what is patched."""
    from loopsafe.django import _patch, conf

    conf.apply(conf.get_settings())
    return _patch.patched()


def apply_skips(*, verbose: bool = False) -> None:
    """Mark each `SKIPS` test skipped on its defining class (inherited by its subclasses)."""
    for name, reason in SKIPS.items():
        module_name, class_name, method_name = name.rsplit(".", 2)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        klass = getattr(module, class_name, None)
        method = getattr(klass, method_name, None) if klass is not None else None
        if method is None:
            if verbose:
                _say(f"loopsafe: (no {name} in this Django version: nothing to skip)")
            continue
        if not getattr(method, "__unittest_skip__", False):
            setattr(klass, method_name, unittest.skip(f"loopsafe: {reason}")(method))
        if verbose:
            _say(f"loopsafe: skipping {name}: {reason}")


def _record_stats() -> None:
    """Append this process's pool counters to the stats file (one line per subsuite)."""
    path = os.environ.get(_STATS_ENV)
    if not path:
        return
    import loopsafe

    stats = loopsafe.default_pool().statistics()
    with Path(path).open("a", encoding="ascii") as out:
        out.write(f"{os.getpid()} {stats.admitted} {stats.completed} {stats.rejected}\n")


def _init_worker(*args: object, **kwargs: object) -> None:
    """Django's worker initializer, then loopsafe's activation (for spawned workers)."""
    django_runner._init_worker(*args, **kwargs)
    activate()
    apply_skips()


class LoopsafeRemoteTestRunner(django_runner.RemoteTestRunner):
    """Django's runner inside a parallel worker, recording the pool's counters afterwards."""

    def run(self, test: unittest.TestSuite) -> object:
        """Run a subsuite, then record this worker's pool counters."""
        result = super().run(test)
        _record_stats()
        return result


class LoopsafeParallelTestSuite(django_runner.ParallelTestSuite):
    """Django's parallel suite whose workers activate loopsafe and record statistics."""

    init_worker = _init_worker
    runner_class = LoopsafeRemoteTestRunner


async def _self_check() -> None:
    """A patched Django acheck_password must run on the loopsafe pool."""
    from django.contrib.auth import hashers

    import loopsafe

    before = loopsafe.default_pool().statistics().admitted
    encoded = hashers.make_password("loopsafe-self-check")
    if not await hashers.acheck_password("loopsafe-self-check", encoded):
        raise RuntimeError("loopsafe self-check: the right password was refused")
    if loopsafe.default_pool().statistics().admitted != before + 1:
        raise RuntimeError("loopsafe self-check: acheck_password did not run on the pool")


class LoopsafeSuiteRunner(django_runner.DiscoverRunner):
    """``DiscoverRunner`` with loopsafe on, the documented skips, and a served-calls count."""

    parallel_test_suite = LoopsafeParallelTestSuite

    def setup_test_environment(self, **kwargs: object) -> None:
        """Activate loopsafe, prove it, and mark the documented skips."""
        super().setup_test_environment(**kwargs)
        patched = activate()
        if not patched:
            _say("loopsafe: PATCH_AUTH on; this Django version has nothing to patch")
        else:
            _say(f"loopsafe: PATCH_AUTH on; patched: {', '.join(patched)}")
            asyncio.run(_self_check())
            _say("loopsafe: self-check passed: hashers.acheck_password ran on the loopsafe pool")
        apply_skips(verbose=True)
        sys.stdout.flush()
        import loopsafe

        # The self-check's call is not the suite's: count from here on.
        self._baseline = loopsafe.default_pool().statistics().admitted

    def suite_result(
        self, suite: unittest.TestSuite, result: unittest.TestResult, **kwargs: object
    ) -> int:
        """Django's failure count, plus one if the loopsafe pool served no call in any process."""
        failures = super().suite_result(suite, result, **kwargs)
        import loopsafe

        admitted_here = loopsafe.default_pool().statistics().admitted
        per_process = {os.getpid(): admitted_here - getattr(self, "_baseline", 0)}
        path = os.environ.get(_STATS_ENV)
        if path and Path(path).exists():
            for line in Path(path).read_text(encoding="ascii").splitlines():
                pid, admitted, *_ = line.split()
                per_process[int(pid)] = max(per_process.get(int(pid), 0), int(admitted))
        served = sum(per_process.values())
        busy = sum(1 for count in per_process.values() if count)
        _say(f"loopsafe: the pool served {served} hashing calls in {busy} process(es)")
        if served == 0 and _patched_names():
            _say("loopsafe: ERROR: no call ran on the loopsafe pool; the patch was not in effect")
            failures += 1
        return failures
