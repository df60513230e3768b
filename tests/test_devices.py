"""``loopsafe.devices``: device tokens bound to a username, and the admission they earn."""

from __future__ import annotations

import pytest

from loopsafe import PasswordHash, profiles
from loopsafe.devices import DEFAULT_MAX_AGE, TRUSTED_PRIORITY, DeviceCookies

SECRET = "s" * 40
NEW_SECRET = "n" * 40


@pytest.fixture
def devices():
    """Device cookies under a test secret."""
    return DeviceCookies(SECRET)


def test_token_verifies_for_its_username_only(devices):
    """A token is valid for the username it was issued to, for no other."""
    token = devices.issue("alice")
    assert devices.verify(token, "alice")
    assert not devices.verify(token, "alicf")
    assert not devices.verify(token, "ALICE")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), id="mac-altered"),
        pytest.param(lambda t: t.replace(".", ".0", 1), id="issue-time-altered"),
        pytest.param(lambda t: "v2" + t[2:], id="unknown-version"),
        pytest.param(lambda t: t + ".x", id="extra-part"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "v1.zz.yy.!!", id="garbage"),
        pytest.param(lambda t: "v1." + "f" * 300, id="oversized"),
        pytest.param(lambda t: None, id="none"),
        pytest.param(lambda t: 12345, id="not-a-string"),
    ],
)
def test_altered_or_malformed_tokens_are_not_trusted(devices, mangle):
    """Anything but an intact token is simply untrusted: False, never an exception."""
    assert not devices.verify(mangle(devices.issue("bob")), "bob")


def test_expiry_and_future_issue_times(devices):
    """A token older than max_age, or issued well in the future, is not trusted."""
    now = 1_800_000_000
    token = devices.issue("carol", now=now)
    assert devices.verify(token, "carol", now=now + DEFAULT_MAX_AGE - 1)
    assert not devices.verify(token, "carol", now=now + DEFAULT_MAX_AGE + 1)
    assert not devices.verify(token, "carol", now=now - 3600)


def test_rotation_old_secret_verifies_new_secret_issues():
    """After rotation old tokens stay valid; new ones are signed with the new secret only."""
    old = DeviceCookies(SECRET)
    rotated = DeviceCookies(NEW_SECRET, old_secrets=[SECRET])
    old_token = old.issue("dave")
    assert rotated.verify(old_token, "dave")
    assert not old.verify(rotated.issue("dave"), "dave")
    assert not DeviceCookies(NEW_SECRET).verify(old_token, "dave")


def test_admission_trusted_gets_device_key_and_priority(devices):
    """A valid token earns its device's own key at TRUSTED_PRIORITY; else the client's key at 0."""
    token = devices.issue("erin")
    trusted = devices.admission(token, "erin", "203.0.113.5")
    assert trusted.trusted
    assert trusted.priority == TRUSTED_PRIORITY
    assert trusted.key != "203.0.113.5"
    assert trusted.key[0] == "loopsafe-device"
    assert devices.admission(devices.issue("erin"), "erin").key != trusted.key  # per device
    anonymous = devices.admission(token, "mallory", "203.0.113.5")
    assert (anonymous.key, anonymous.priority, anonymous.trusted) == ("203.0.113.5", 0, False)


def test_bind_keeps_the_client_binding_unless_trusted(devices):
    """``bind`` returns the client-bound hasher as it is, or a copy at the device's key."""
    password_hash = PasswordHash(profiles.CHEAP.hashers()).for_client("198.51.100.1")
    same, admission = devices.bind(password_hash, None, "frank")
    assert same is password_hash
    assert not admission.trusted
    bound, admission = devices.bind(password_hash, devices.issue("frank"), "frank")
    assert admission.trusted
    assert (bound._key, bound._priority) == (admission.key, TRUSTED_PRIORITY)


def test_nothing_of_the_token_or_secret_in_reprs(devices):
    """Neither the secret nor a token nor the device key shows in a repr."""
    token = devices.issue("gina")
    admission = devices.admission(token, "gina")
    text = f"{devices!r} {admission!r}"
    assert SECRET not in text
    assert token.split(".")[2] not in text
    assert "gina" not in text


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"secret": "short"}, ValueError, id="secret-too-short"),
        pytest.param({"secret": 42}, TypeError, id="secret-not-str-or-bytes"),
        pytest.param({"secret": SECRET, "max_age": 0}, ValueError, id="max-age-zero"),
        pytest.param({"secret": SECRET, "max_age": "1d"}, TypeError, id="max-age-not-a-number"),
        pytest.param({"secret": SECRET, "priority": 9}, ValueError, id="priority-out-of-range"),
        pytest.param({"secret": SECRET, "cookie_name": ""}, ValueError, id="empty-cookie-name"),
    ],
)
def test_bad_options_raise(kwargs, error):
    """Wrong types raise TypeError and wrong values ValueError, when the object is made."""
    with pytest.raises(error):
        DeviceCookies(**kwargs)


def test_issue_needs_a_string_username(devices):
    """A username that is not a str raises TypeError."""
    with pytest.raises(TypeError):
        devices.issue(b"bytes")


def test_set_cookie_on_real_responses_of_every_framework(devices):
    """``set_cookie`` works on Starlette, Litestar, aiohttp and Django responses alike."""
    from aiohttp import web
    from litestar import Response as LitestarResponse
    from starlette.responses import Response as StarletteResponse

    starlette = StarletteResponse("ok")
    devices.set_cookie(starlette, "hana")
    header = starlette.headers["set-cookie"]
    assert header.startswith("loopsafe_device=v1.")
    assert "HttpOnly" in header
    assert "Max-Age=7776000" in header
    litestar = LitestarResponse("ok")
    devices.set_cookie(litestar, "hana")
    assert litestar.cookies[0].key == "loopsafe_device"
    aio = web.Response(text="ok")
    devices.set_cookie(aio, "hana")
    assert devices.verify(aio.cookies["loopsafe_device"].value, "hana")
    assert devices.read(aio.cookies) == aio.cookies["loopsafe_device"].value
