"""``loopsafe.throttle.LoginThrottle``: per-account and per-client budgets before any hash."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from _support import SRC
from loopsafe import LoopsafeError, Throttled
from loopsafe.throttle import LoginThrottle


def spend(throttle, username, client=None, *, trusted=False, attempts=20):
    """Return how many of ``attempts`` pass, and the first refusal (or None)."""
    passed, refusal = 0, None
    for _ in range(attempts):
        try:
            throttle.check(username, client, trusted=trusted)
        except Throttled as exc:  # noqa: PERF203 - counting refusals is the point
            refusal = refusal or exc
        else:
            passed += 1
    return passed, refusal


def test_account_budget_refuses_with_429_scope_and_retry_after():
    """The N+1th attempt on one account is refused: scope account, Retry-After within the window."""
    throttle = LoginThrottle(per_account="3/minute", per_client=None)
    passed, refusal = spend(throttle, "alice", "203.0.113.1", attempts=5)
    assert passed == 3
    assert refusal.scope == "account"
    assert 0 < refusal.retry_after <= 60
    assert 1 <= int(refusal.retry_after_header) <= 60
    assert isinstance(refusal, LoopsafeError)


def test_account_budget_holds_across_client_addresses():
    """Rotating the client address does not reset the account's budget (credential stuffing)."""
    throttle = LoginThrottle(per_account="4/minute", per_client=None)
    passed = sum(spend(throttle, "alice", f"198.51.100.{n}", attempts=1)[0] for n in range(20))
    assert passed == 4


def test_client_budget_is_counted_first_and_spares_the_account():
    """A client over its budget is refused with scope client; the account keeps its attempts."""
    throttle = LoginThrottle(per_account="5/minute", per_client="2/minute")
    passed, refusal = spend(throttle, "bob", "203.0.113.9", attempts=4)
    assert passed == 2
    assert refusal.scope == "client"
    assert throttle.remaining("bob") == 3


def test_trusted_devices_have_their_own_budget():
    """An exhausted account budget does not lock its trusted devices out; they have their own."""
    throttle = LoginThrottle(per_account="2/minute", per_client=None, per_device="3/minute")
    assert spend(throttle, "carol", attempts=5)[0] == 2
    passed, refusal = spend(throttle, "carol", trusted=True, attempts=5)
    assert passed == 3
    assert refusal.scope == "device"


def test_reset_after_success_gives_a_fresh_window():
    """``reset`` clears the account's window (a successful login)."""
    throttle = LoginThrottle(per_account="2/minute", per_client=None)
    assert spend(throttle, "dave", attempts=3)[0] == 2
    throttle.reset("dave")
    assert spend(throttle, "dave", attempts=3)[0] == 2


@pytest.mark.anyio
async def test_async_check_and_reset_share_the_memory_budget():
    """``acheck``/``areset`` count in the same in-memory windows as ``check``."""
    throttle = LoginThrottle(per_account="3/minute", per_client=None)
    throttle.check("erin")
    await throttle.acheck("erin")
    await throttle.acheck("erin")
    with pytest.raises(Throttled):
        await throttle.acheck("erin")
    await throttle.areset("erin")
    await throttle.acheck("erin")


def test_message_repr_and_pickle_never_name_the_account_or_client():
    """Neither the refusal nor the throttle's repr carries the username or the address."""
    throttle = LoginThrottle(per_account="1/minute", per_client=None)
    throttle.check("secret-user-name", "192.0.2.77")
    with pytest.raises(Throttled) as caught:
        throttle.check("secret-user-name", "192.0.2.77")
    text = f"{caught.value} {caught.value!r} {throttle!r}"
    assert "secret-user-name" not in text
    assert "192.0.2.77" not in text
    again = pickle.loads(pickle.dumps(caught.value))  # noqa: S301 - our own bytes
    assert (again.scope, again.retry_after) == (caught.value.scope, caught.value.retry_after)


def test_storage_keys_are_hashed():
    """What reaches the storage is a digest, not the username."""
    throttle = LoginThrottle()
    identifier = throttle._id("account", "frank")
    assert "frank" not in identifier
    assert identifier.startswith("loopsafe-login:account:")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"per_account": 10}, TypeError, id="budget-not-a-string"),
        pytest.param({"per_client": "often"}, ValueError, id="budget-not-a-rate"),
        pytest.param({"storage": "localhost"}, ValueError, id="storage-not-a-uri"),
        pytest.param({"storage": 6379}, TypeError, id="storage-not-a-string"),
    ],
)
def test_bad_options_raise(kwargs, error):
    """Wrong types raise TypeError, wrong values ValueError, when the throttle is made."""
    with pytest.raises(error):
        LoginThrottle(**kwargs)


def test_username_must_be_a_string():
    """A username that is not a str (bytes, a number) raises TypeError."""
    with pytest.raises(TypeError):
        LoginThrottle().check(b"bytes-name")


# ---- Redis: one budget shared by several worker processes -------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from loopsafe import Throttled
    from loopsafe.throttle import LoginThrottle

    uri, start, attempts, mode = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    throttle = LoginThrottle(per_account="12/minute", per_client=None, storage=uri)

    async def run():
        passed = 0
        while time.time() < start:
            time.sleep(0.001)
        for n in range(attempts):
            try:
                if mode == "async":
                    await throttle.acheck("shared-account", f"198.51.100.{n}")
                else:
                    throttle.check("shared-account", f"198.51.100.{n}")
            except Throttled:
                continue
            passed += 1
        print(passed)

    asyncio.run(run())
    """
)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_uri(tmp_path):
    """Start a real redis-server on 127.0.0.1 (temp dir, free port, no saving); stop it by PID."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    pytest.importorskip("redis")
    port = _free_port()
    process = subprocess.Popen(
        [
            *(server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "yes"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        else:
            pytest.fail("redis-server did not answer")
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_four_processes_share_one_account_budget_through_redis(redis_uri):
    """4 worker processes, 10 attempts each on one account: 12 pass in total, not 12 per process."""
    start = time.time() + 2.0
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    modes = ["sync", "async", "sync", "async"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_uri, str(start), "10", mode],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for mode in modes
    ]
    passed = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        passed.append(int(out))
    assert sum(passed) == 12
    assert all(count < 12 for count in passed)  # the work really was spread over them
