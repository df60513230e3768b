"""The public surface of loopsafe.django: what each module's ``__all__`` promises it exports."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

MODULES = [
    "loopsafe.django",
    "loopsafe.django.apps",
    "loopsafe.django.backends",
    "loopsafe.django.checks",
    "loopsafe.django.conf",
    "loopsafe.django.middleware",
    "loopsafe.django.mixins",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_complete(name):
    """Every name in __all__ exists, __all__ is sorted, and nothing public is left out."""
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    for attr in exported:
        assert hasattr(module, attr), attr
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and isinstance(value, (type, types.FunctionType))
        and value.__module__ == name
    }
    assert public <= set(exported), public - set(exported)


def test_package_exports_djangos_async_password_functions():
    """loopsafe.django offers the async twins under Django's names, the client key and devices."""
    import loopsafe.django

    assert loopsafe.django.__all__ == [
        "aauthenticate",
        "acheck_password",
        "amake_password",
        "aset_password",
        "averify_password",
        "client_address",
        "device_cookies",
        "set_device_cookie",
    ]


def test_signatures_match_django():
    """Each function takes Django's parameters, in Django's order, with Django's defaults.

    loopsafe adds one keyword-only parameter at the end, ``key`` (the client
    the call is for), which Django's functions do not have.
    """
    import inspect

    from django.contrib.auth import hashers

    import loopsafe.django as ours

    for name, sync_name in [
        ("acheck_password", "check_password"),
        ("amake_password", "make_password"),
    ]:
        theirs = inspect.signature(getattr(hashers, sync_name))
        mine = inspect.signature(getattr(ours, name))
        assert [(p.name, p.default) for p in mine.parameters.values()] == [
            *((p.name, p.default) for p in theirs.parameters.values()),
            ("key", None),
        ]
        assert mine.parameters["key"].kind is inspect.Parameter.KEYWORD_ONLY
    verify = getattr(hashers, "verify_password", None)
    if verify is not None:
        assert list(inspect.signature(ours.averify_password).parameters) == [
            *inspect.signature(verify).parameters,
            "key",
        ]
    assert list(inspect.signature(ours.aset_password).parameters) == [
        "user",
        "raw_password",
        "key",
    ]


def test_import_needs_no_settings():
    """`import loopsafe.django` works in a fresh interpreter where Django is not configured."""
    code = (
        "import loopsafe.django, loopsafe.django.mixins, loopsafe.django.middleware; "
        "from django.conf import settings; print(settings.configured)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
