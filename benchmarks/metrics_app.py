"""examples/fastapi_app.py, unchanged, with its metrics served as docs/deploying.md says.

``loopsafe.prometheus.register()`` (the default pool, host-wide under
several workers) with the loop's lag, and ``starlette_route()`` on
``/metrics``. With ``PROMETHEUS_MULTIPROC_DIR`` set, the route serves
prometheus_client's multi-process collector instead. ``/bench/pid`` names the
worker that answers. Used by ``benchmarks/scrape_consistency.py`` and the
real-Prometheus test (``tests/test_deploy_prometheus.py``).
"""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.fastapi_app import app

from loopsafe import LoopLagMonitor
from loopsafe.prometheus import register, starlette_route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI

__all__ = ["app"]

COLLECTOR = register()
app.router.routes.append(starlette_route())
_inner = app.router.lifespan_context


@asynccontextmanager
async def _with_lag(application: FastAPI) -> AsyncIterator[Any]:
    async with LoopLagMonitor(keep_all=False) as lag:
        COLLECTOR.lag = lag
        async with _inner(application) as state:
            yield state


app.router.lifespan_context = _with_lag


@app.get("/bench/pid")
async def bench_pid() -> dict[str, int]:
    """Answer at once, naming the worker."""
    return {"pid": os.getpid()}
