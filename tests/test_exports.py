"""The public surface: what `__all__` promises is what the modules export."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import loopsafe

PUBLIC_MODULES = [
    "loopsafe",
    "loopsafe.exceptions",
    "loopsafe.profiles",
    "loopsafe.litestar",
    "loopsafe.aiohttp",
    "loopsafe.advanced_alchemy",
    "loopsafe.opentelemetry",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_complete(name):
    """Every name in __all__ exists, __all__ is sorted, and nothing public is left out."""
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    for attr in exported:
        assert hasattr(module, attr), attr
    # Classes and functions defined in the module itself must be exported.
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and isinstance(value, (type, types.FunctionType))
        and value.__module__ == name
    }
    assert public <= set(exported), public - set(exported)


def test_public_classes_claim_the_package():
    """Every exported class and function is loopsafe's own, defined behind the curated surface."""
    own = 0
    for attr in loopsafe.__all__:
        value = getattr(loopsafe, attr)
        if isinstance(value, types.ModuleType):
            assert value.__name__ == f"loopsafe.{attr}"
            continue
        module = value.__module__
        assert module.startswith("loopsafe."), (attr, module)
        # Defined in a private module (or the public hashers/exceptions/profiles
        # packages), and reachable under the same name from where it was defined.
        assert getattr(sys.modules[module], value.__name__) is value, attr
        assert value.__name__ == attr, attr
        own += 1
    assert own == len(loopsafe.__all__) - 2  # all but the modules hashers and profiles


def test_core_imports_without_optional_dependencies():
    """`import loopsafe` loads none of the optional libraries."""
    code = (
        "import sys, loopsafe; "
        "heavy = {'django', 'argon2', 'bcrypt', 'starlette', 'prometheus_client', 'trio', "
        "'rich', 'matplotlib', 'asgiref', 'anyio', 'httpx', 'uvicorn', 'litestar', 'aiohttp', "
        "'advanced_alchemy', 'sqlalchemy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version():
    """loopsafe.__version__ is the installed distribution's version."""
    assert loopsafe.__version__
    with pytest.raises(AttributeError):
        loopsafe.no_such_name  # noqa: B018


def test_django_integration_without_django_names_the_extra():
    """Importing loopsafe.django where Django is missing says which extra to install."""
    code = (
        "import sys; sys.modules['django'] = None\n"
        "try:\n    import loopsafe.django\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "pip install 'loopsafe[django]'" in out
