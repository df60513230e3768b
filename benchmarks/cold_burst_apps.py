"""The cold-burst benchmark's small apps, each as the README and docs write it: default settings.

``COLD_BURST_APP`` picks one: ``fastapi`` (``lifespan()``), ``litestar``
(``LoopsafePlugin()``), ``fastapi_users`` (fastapi-users' ``PasswordHelper`` in a
FastAPI app with ``lifespan()``) as ``cold_burst_apps:app`` for uvicorn, or
``aiohttp`` (``loopsafe.aiohttp.setup()``) on aiohttp's own runner:
``python benchmarks/cold_burst_apps.py --port N``. Django's app is the e2e
project (benchmarks/e2e). Every app hashes PBKDF2-SHA256 at Django 6.1's
1,500,000 iterations and checks ``POST /login`` (JSON ``{"password"}``)
against ``COLD_BURST_STORED``, a hash made by the runner; ``GET /health``
answers at once. No pool setting is given: loopsafe's defaults.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from aiohttp import web
from fastapi import FastAPI, Request
from litestar import Litestar, get, post
from litestar import Request as LitestarRequest
from litestar.di import NamedDependency

import loopsafe.aiohttp
from loopsafe import PasswordHash, PBKDF2Hasher
from loopsafe.fastapi_users import PasswordHelper
from loopsafe.litestar import LoopsafePlugin
from loopsafe.starlette import EXCEPTION_HANDLERS, get_password_hash, lifespan, request_key

KIND = os.environ.get("COLD_BURST_APP", "fastapi")
STORED = os.environ.get("COLD_BURST_STORED", "")
#: Django 6.1's PBKDF2 iterations.
ITERATIONS = 1_500_000


def password_hash() -> PasswordHash:
    """PBKDF2 at Django 6.1's cost, the app's only hasher."""
    return PasswordHash([PBKDF2Hasher(iterations=ITERATIONS)])


def fastapi_app(*, helper: bool) -> Any:  # noqa: ANN401 - a FastAPI app
    """FastAPI with loopsafe's lifespan; fastapi-users' PasswordHelper when ``helper``."""
    ph = password_hash()
    app = FastAPI(lifespan=lifespan(password_hash=ph), exception_handlers=EXCEPTION_HANDLERS)
    password_helper = PasswordHelper(ph)

    async def health() -> dict[str, bool]:
        return {"ok": True}

    async def login(request: Request) -> dict[str, bool]:
        body = await request.json()
        if helper:
            bound = password_helper.for_client(request_key(request))
            ok, _ = await bound.averify_and_update(body["password"], STORED)
        else:
            hasher = await get_password_hash(request)
            ok, _ = await hasher.averify_and_update(body["password"], STORED)
        return {"ok": ok}

    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/login", login, methods=["POST"])
    return app


def litestar_app() -> Any:  # noqa: ANN401 - a Litestar app
    """Litestar with ``LoopsafePlugin(password_hash=...)``."""

    @get("/health", sync_to_thread=False)
    def health() -> dict[str, bool]:
        return {"ok": True}

    @post(
        "/login",
        status_code=200,
        signature_namespace={
            "LitestarRequest": LitestarRequest,
            "NamedDependency": NamedDependency,
        },
    )
    async def login(
        request: LitestarRequest[Any, Any, Any], password_hash: NamedDependency[PasswordHash]
    ) -> dict[str, bool]:
        body = await request.json()
        ok, _ = await password_hash.averify_and_update(body["password"], STORED)
        return {"ok": ok}

    return Litestar([health, login], plugins=[LoopsafePlugin(password_hash=password_hash())])


def aiohttp_app() -> Any:  # noqa: ANN401 - an aiohttp Application
    """An aiohttp app with ``loopsafe.aiohttp.setup(app, password_hash=...)``."""

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        hasher = loopsafe.aiohttp.get_password_hash(request)
        ok, _ = await hasher.averify_and_update(body["password"], STORED)
        return web.json_response({"ok": ok})

    app = web.Application()
    loopsafe.aiohttp.setup(app, password_hash=password_hash())
    app.router.add_get("/health", health)
    app.router.add_post("/login", login)
    return app


if KIND in {"fastapi", "fastapi_users"}:
    app = fastapi_app(helper=KIND == "fastapi_users")
elif KIND == "litestar":
    app = litestar_app()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve the aiohttp app on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    web.run_app(aiohttp_app(), host="127.0.0.1", port=parser.parse_args().port, print=None)
