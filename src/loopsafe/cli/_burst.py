"""The burst client: one sign-up, then N logins at once while /health is probed every 10 ms.

Run by `loopsafe.cli._harness.run_burst` in its own process, so its event loop
is not the server's::

    python -m loopsafe.cli._burst BASE LOGINS SIGNUP LOGIN USERNAME json|form EVERY MAX LIMIT

It signs the user up (JSON ``{"username": ..., "password": ...}``, or
``{"email": ...}`` when the name holds an ``@``), prints ``signed-up``, waits
for a line on standard input (the parent reads the server's CPU time), then
sends the logins and probes /health until every login is answered, at most
MAX probes and LIMIT seconds. It prints one JSON line: ``lat`` (seconds per
probe), ``statuses`` (one per login) and ``burst`` (seconds).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

__all__ = ["PASSWORD", "main"]

#: The one user's password.
PASSWORD = "correct horse battery staple"  # noqa: S105 - a benchmark account's, on loopback
_CREATED = {200, 201}


async def burst(argv: list[str]) -> dict[str, object]:
    """Sign up, wait for the go, run the burst with its probes; return the figures."""
    base, count, signup, login, username, encoding, every_s, most, limit_s = argv
    logins, every, max_probes, limit = int(count), float(every_s), int(most), float(limit_s)
    async with httpx.AsyncClient(base_url=base, timeout=limit) as client:
        name_field = "email" if "@" in username else "username"
        response = await client.post(signup, json={name_field: username, "password": PASSWORD})
        if response.status_code not in _CREATED:
            raise RuntimeError(f"sign-up answered {response.status_code}")
        sys.stdout.write("signed-up\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        credentials = {"username": username, "password": PASSWORD}
        body = {"data": credentials} if encoding == "form" else {"json": credentials}
        lat: list[float] = []
        statuses: list[int] = []
        done = asyncio.Event()

        async def one_login() -> None:
            statuses.append((await client.post(login, **body)).status_code)  # type: ignore[arg-type]

        async def logins_at_once() -> None:
            await asyncio.gather(*(one_login() for _ in range(logins)))
            done.set()

        async def probe() -> None:
            end = time.monotonic() + limit
            while not done.is_set() and len(lat) < max_probes and time.monotonic() < end:
                start = time.perf_counter()
                await client.get("/health")
                lat.append(time.perf_counter() - start)
                await asyncio.sleep(every)

        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(logins_at_once(), probe()), limit)
        return {"lat": lat, "statuses": statuses, "burst": time.perf_counter() - start}


def main(argv: list[str]) -> None:
    """Run the burst the positional arguments describe and print its JSON line."""
    sys.stdout.write(json.dumps(asyncio.run(burst(argv))) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
