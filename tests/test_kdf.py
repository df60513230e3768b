"""The KDF backends under PBKDF2 and scrypt: same bytes as hashlib, chosen by measurement, GIL-free.

Every vector is checked against ``hashlib`` (the reference: the system
OpenSSL) with each backend forced through ``LOOPSAFE_KDF_BACKEND``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopsafe.exceptions import HasherNotAvailable
from loopsafe.hashers import PBKDF2Hasher, PBKDF2SHA1Hasher, ScryptHasher, _kdf, kdf_backends

HAS_CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None
needs_cryptography = pytest.mark.skipif(not HAS_CRYPTOGRAPHY, reason="cryptography not installed")

BACKEND_PARAMS = [
    pytest.param("hashlib", id="hashlib"),
    pytest.param("cryptography", id="cryptography", marks=needs_cryptography),
]

PASSWORDS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"password", id="ascii"),
    pytest.param("pässwörd-🔑".encode(), id="non-ascii"),
    pytest.param(b"\x00\xff\xfe raw bytes", id="bytes"),
    pytest.param(b"x" * 4096, id="long-4096"),
]
SALTS = [
    pytest.param(b"a", id="salt-1"),
    pytest.param(b"seasalt", id="salt-7"),
    pytest.param(b"Zm9vYmFyYmF6cXV4Zm9vYmFy", id="salt-24"),
    pytest.param(b"s" * 200, id="salt-200"),
]


@pytest.fixture
def forced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Force the KDF backend named by the test's parameter for this test only."""
    monkeypatch.setenv(_kdf.ENV_VARIABLE, request.param)
    _kdf._reset()
    yield request.param
    _kdf._reset()


@pytest.fixture
def fresh_choice(monkeypatch: pytest.MonkeyPatch):
    """No override and no cached choice: the next call measures."""
    monkeypatch.delenv(_kdf.ENV_VARIABLE, raising=False)
    _kdf._reset()
    yield
    _kdf._reset()


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@pytest.mark.parametrize("salt", SALTS)
@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("iterations", [1, 2, 1000, 4097])
@pytest.mark.parametrize("digest", ["sha256", "sha1"])
def test_pbkdf2_bytes_are_hashlibs(forced, digest, iterations, password, salt):
    """PBKDF2 on the forced backend returns hashlib's bytes, and the backend is the forced one."""
    expected = hashlib.pbkdf2_hmac(digest, password, salt, iterations)
    assert _kdf.pbkdf2_hmac(digest, password, salt, iterations) == expected
    assert _kdf.backend("pbkdf2").backend == forced


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@pytest.mark.parametrize("salt", SALTS)
@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    ("n", "r", "p"),
    [
        pytest.param(2, 1, 1, id="N2-r1-p1"),
        pytest.param(16, 8, 1, id="N16-r8-p1"),
        pytest.param(2**10, 8, 2, id="N1024-r8-p2"),
        pytest.param(2**8, 2, 5, id="N256-r2-p5"),
    ],
)
def test_scrypt_bytes_are_hashlibs(forced, n, r, p, password, salt):  # noqa: PLR0917 - parameters
    """Scrypt on the forced backend returns hashlib's 64 bytes."""
    expected = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=2**26, dklen=64)
    assert _kdf.scrypt(password, salt, n, r, p) == expected
    assert _kdf.backend("scrypt").backend == forced


@needs_cryptography
@settings(max_examples=60, deadline=None)
@given(
    password=st.binary(max_size=300),
    salt=st.binary(min_size=1, max_size=64),
    iterations=st.integers(1, 300),
    digest=st.sampled_from(["sha256", "sha1"]),
)
def test_backends_agree_on_random_input(password, salt, iterations, digest):
    """Both backends derive the same PBKDF2 key for arbitrary passwords, salts and counts."""
    ours = _kdf._pbkdf2_cryptography(digest, password, salt, iterations)
    assert ours == _kdf._pbkdf2_hashlib(digest, password, salt, iterations)


def _django_format(digest: str, password: bytes, salt: str, iterations: int) -> str:
    raw = hashlib.pbkdf2_hmac(digest, password, salt.encode(), iterations)
    return base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@pytest.mark.parametrize("password", ["", "correct horse", "pässwörd-🔑", "y" * 2000, b"\xffbytes"])
@pytest.mark.parametrize("hasher_class", [PBKDF2Hasher, PBKDF2SHA1Hasher])
def test_hashers_encode_hashlibs_bytes_and_verify_them(forced, hasher_class, password):
    """loopsafe's PBKDF2 hashers make hashlib's Django-format strings and verify them, both ways."""
    hasher = hasher_class(iterations=1500)
    secret = password.encode() if isinstance(password, str) else password
    tag = _django_format(hasher.digest, secret, "saltsalt", 1500)
    reference = f"{hasher.algorithm}$1500$saltsalt${tag}"
    assert hasher.encode(password, "saltsalt") == reference
    assert hasher.verify(password, reference)
    assert not hasher.verify(secret + b"!", reference)


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
def test_scrypt_hasher_encodes_hashlibs_bytes(forced):
    """loopsafe's scrypt hasher makes the string hashlib's scrypt gives, and verifies it."""
    hasher = ScryptHasher(work_factor=2**8, block_size=8, parallelism=2)
    raw = hashlib.scrypt(b"pw", salt=b"saltsalt", n=256, r=8, p=2, maxmem=2**26, dklen=64)
    reference = f"scrypt$256$saltsalt$8$2${base64.b64encode(raw).decode()}"
    assert hasher.encode("pw", "saltsalt") == reference
    assert hasher.verify("pw", reference)
    assert not hasher.verify("pW", reference)


@needs_cryptography
def test_unset_variable_measures_and_the_faster_wins(fresh_choice):
    """Without an override, both backends are timed and the one with less CPU is chosen."""
    choices = kdf_backends()
    for kdf in _kdf.KDFS:
        choice = choices[kdf]
        assert choice.chosen_by == "measurement"
        assert set(choice.probe_seconds) == set(_kdf.BACKENDS)
        assert all(seconds > 0 for seconds in choice.probe_seconds.values())
        assert choice.backend == min(choice.probe_seconds, key=choice.probe_seconds.__getitem__)
        assert choice.backend in choice.describe()


def test_the_choice_is_made_once_for_all_threads(fresh_choice):
    """Threads asking at once all get the one choice, made by the first of them."""
    barrier = threading.Barrier(6)
    seen: list[object] = []

    def ask() -> None:
        barrier.wait()
        seen.append(_kdf.backend("pbkdf2"))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 6
    assert all(choice is seen[0] for choice in seen)
    assert _kdf.backend("pbkdf2") is seen[0]


def test_without_cryptography_hashlib_runs(fresh_choice, monkeypatch):
    """When cryptography cannot be imported, hashlib computes everything, and says why."""
    for name in ("cryptography", "cryptography.hazmat.primitives.kdf"):
        monkeypatch.setitem(sys.modules, name, None)
    choices = kdf_backends()
    assert {choice.backend for choice in choices.values()} == {"hashlib"}
    assert {choice.chosen_by for choice in choices.values()} == {"only"}
    assert "loopsafe[cryptography]" in choices["pbkdf2"].describe()
    hasher = PBKDF2Hasher(iterations=10)
    assert hasher.verify("pw", hasher.hash("pw"))


def test_forcing_a_missing_cryptography_names_the_extra(fresh_choice, monkeypatch):
    """LOOPSAFE_KDF_BACKEND=cryptography without cryptography raises, naming the extra."""
    monkeypatch.setitem(sys.modules, "cryptography", None)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.kdf", None)
    monkeypatch.setenv(_kdf.ENV_VARIABLE, "cryptography")
    with pytest.raises(HasherNotAvailable, match=r"loopsafe\[cryptography\]"):
        _kdf.backend("pbkdf2")


@pytest.mark.parametrize(
    "hasher",
    [
        pytest.param(PBKDF2Hasher(iterations=10), id="pbkdf2"),
        pytest.param(ScryptHasher(work_factor=16, block_size=1, parallelism=1), id="scrypt"),
    ],
)
def test_an_unknown_backend_name_is_refused(fresh_choice, monkeypatch, hasher):
    """A misspelt LOOPSAFE_KDF_BACKEND is a ValueError listing the names, never a False verify."""
    encoded = hasher.hash("pw")
    _kdf._reset()
    monkeypatch.setenv(_kdf.ENV_VARIABLE, "openssl")
    with pytest.raises(ValueError, match="hashlib, cryptography or auto"):
        hasher.verify("pw", encoded)


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
def test_the_environment_choice_is_reported(forced):
    """A forced backend is reported as chosen by the environment, with no probe times."""
    choice = kdf_backends()["pbkdf2"]
    assert (choice.backend, choice.chosen_by, choice.probe_seconds) == (forced, "environment", {})
    assert _kdf.ENV_VARIABLE in choice.describe()
    assert choice.as_dict()["backend"] == forced


def _max_gap_while(work) -> tuple[float, float]:
    """Run ``work`` beside a pure-Python ticker thread: (work's wall time, the ticker's max gap)."""
    stop = threading.Event()
    started = threading.Event()
    gaps: list[float] = []
    window: list[float] = []

    def ticker() -> None:
        last = time.perf_counter()
        started.set()
        while not stop.is_set():
            sum(range(100))  # bytecode: needs the GIL
            now = time.perf_counter()
            if window and window[0] <= now:
                gaps.append(now - last)
            last = now

    thread = threading.Thread(target=ticker)
    thread.start()
    started.wait()
    time.sleep(0.02)
    begin = time.perf_counter()
    window.append(begin)
    work()
    wall = time.perf_counter() - begin
    stop.set()
    thread.join()
    return wall, max(gaps, default=wall)


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@pytest.mark.parametrize("kdf", ["pbkdf2", "scrypt"])
def test_the_gil_is_released_while_deriving(forced, kdf):
    """A GIL-hungry thread keeps ticking while a key is derived on either backend."""
    if kdf == "pbkdf2":

        def work() -> object:
            return _kdf.pbkdf2_hmac("sha256", b"pw", b"saltsalt", 600_000)
    else:

        def work() -> object:
            return _kdf.scrypt(b"pw", b"saltsalt", 2**14, 8, 5)

    work()  # the backend is chosen, the code warm
    results = [_max_gap_while(work) for _ in range(3)]
    # Holding the GIL would stop the ticker for the whole derivation (its gap
    # would be the wall time); released, it is starved only by the OS.
    assert min(gap / wall for wall, gap in results) < 0.5, results
