"""A tiny ASGI login app for the gunicorn ``--preload`` test: answers with the worker's pid.

The master imports this module once (``--preload``) and hashes the stored
password *on the default pool* while doing so, so the pool's worker threads
exist in the master before gunicorn forks its workers. Each worker must then
verify logins on its own fresh threads.

``POST /login`` with the password as the body answers
``{"pid": ..., "ok": ..., "threads": ...}``; ``GET /health`` answers the pid.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from loopsafe import PasswordHash, default_pool, profiles

PASSWORD = "preload-password"
PH = PasswordHash.recommended(profile=profiles.CHEAP)
# Uses the default pool in the master, before the fork.
STORED = asyncio.run(PH.ahash(PASSWORD))
MASTER_PID = os.getpid()
MASTER_THREADS = default_pool().statistics().threads


async def _send_json(send: Any, status: int, payload: dict[str, object]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serve ``/login`` and ``/health``; answer lifespan events."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/login":
        ok = await PH.averify(body.decode(errors="replace"), STORED)
        stats = default_pool().statistics()
        await _send_json(
            send,
            200,
            {
                "pid": os.getpid(),
                "master_pid": MASTER_PID,
                "master_threads": MASTER_THREADS,
                "ok": ok,
                "threads": stats.threads,
                "max_workers": stats.max_workers,
            },
        )
        return
    await _send_json(send, 200, {"pid": os.getpid()})
