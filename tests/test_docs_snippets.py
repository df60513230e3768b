"""Every code block in README.md and docs/*.md runs as written, against real frameworks.

The blocks are read from the Markdown at collection time, so a snippet that
stops running fails the suite. What a block is, is said by an HTML comment on
the line just before it (invisible when the Markdown is rendered):

- a ``python`` block with no comment is a script: it runs with this
  interpreter in an empty temporary folder and must exit 0;
- ``<!-- app: asgi CHECK -->`` / ``<!-- app: aiohttp CHECK -->``: a complete
  app module. It is saved as ``app.py`` and served on 127.0.0.1 on a free port
  (``uvicorn app:app``, or ``python -m aiohttp.web app:make_app``), then CHECK
  runs through real HTTP: ``login`` (POST /signup 201, /login 200, a wrong
  password and an unknown user 401), ``fastapi-users-login`` (POST
  /auth/register 201, /auth/jwt/login 200 with a token, a wrong password 400)
  or ``metrics`` (GET /metrics: Prometheus text with loopsafe's series);
- ``<!-- django: PATH -->`` / ``<!-- django: PATH (append) -->``: a file of the
  page's Django project, written over (or appended to) what
  ``django-admin startproject mysite .`` wrote. Pages other than README.md and
  docs/django.md lay their files over docs/django.md's project. The project is
  migrated, ``manage.py check`` must report no issue at all, a user is created,
  and uvicorn serves it: a login through ``/login`` (CSRF cookie and header)
  answers 200, a wrong password 401, and ``/metrics`` is scraped when routed;
- ``<!-- excerpt: PATH -->``: lines quoted from a runnable file of this
  repository (an example with its own tests); each run of lines between
  ``...`` lines must stand, in order, in PATH;
- ``<!-- not run: REASON -->``: not run; the reason names the test that covers it.

``console`` and ``bash`` blocks are checked, not run: the repository paths they
name exist, every ``loopsafe[...]`` extra is in pyproject.toml, and the options
given to ``loopsafe COMMAND`` and to the scripts in ``benchmarks/`` exist.

The snippets are the user's code, so they hash at their real costs (Argon2id
at Django's defaults: a few hashes per block).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import django
import httpx
import pytest

from _support import REPO, child_env
from loopsafe.cli._harness import serving, uvicorn

if TYPE_CHECKING:
    from pathlib import Path

PAGES = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md")], key=lambda p: p.relative_to(REPO)
)
DJANGO_BASE = "docs/django.md"
PASSWORD = "correct horse battery staple"
RUN_BOUND = 120.0

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*([\w -]+):\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its page, line, language, marker kind and argument, and code."""

    page: str
    line: int
    lang: str
    kind: str
    arg: str
    code: str

    @property
    def id(self) -> str:
        """``page:line``, the test id."""
        return f"{self.page}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """Return every fenced block of ``path`` with the marker on the line before it."""
    page = str(path.relative_to(REPO))
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        opened = _FENCE.match(lines[number])
        if opened is None:
            number += 1
            continue
        start = number
        number += 1
        body = []
        while number < len(lines) and lines[number] != "```":
            body.append(lines[number])
            number += 1
        previous = lines[start - 1].strip() if start else ""
        marker = _MARKER.match(previous)
        kind, arg = (marker.group(1).strip(), marker.group(2)) if marker else ("", "")
        blocks.append(Block(page, start + 1, opened.group(1), kind, arg, "\n".join(body) + "\n"))
        number += 1
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
PYTHON = [b for b in BLOCKS if b.lang == "python"]


def blocks_of(kind: str) -> list[pytest.ParameterSet]:
    """Return the python blocks marked ``kind`` ("" for scripts), as parameters named page:line."""
    return [pytest.param(b, id=b.id) for b in PYTHON if b.kind == kind]


def snippet_env(folder: Path | None = None) -> dict[str, str]:
    """Return a child's environment: this checkout's loopsafe, ``folder`` importable.

    A Django settings module another test set in this process is dropped: a
    project's ``manage.py`` only sets its own when none is set.
    """
    env = child_env()
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if folder is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(folder), env["PYTHONPATH"]])
    return env


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``argv`` in ``cwd``, bounded; return what it did."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env=snippet_env(cwd),
        capture_output=True,
        text=True,
        timeout=RUN_BOUND,
        check=False,
    )


def test_every_python_block_has_a_known_kind():
    """Each python block is a script, an app, a Django file, an excerpt or a reasoned not-run."""
    known = {"", "app", "django", "excerpt", "not run"}
    assert PYTHON, "no python block found"
    for block in PYTHON:
        assert block.kind in known, f"{block.id}: unknown marker {block.kind!r}"
        if block.kind == "not run":
            assert "test" in block.arg, f"{block.id}: say which test covers it"
    not_run = [b for b in PYTHON if b.kind == "not run"]
    assert len(not_run) <= len(PYTHON) // 5, "not-run blocks are meant to be rare"


@pytest.mark.parametrize("block", blocks_of(""))
def test_script_runs(block: Block, tmp_path: Path):
    """A plain python block runs as a script and exits 0."""
    (tmp_path / "snippet.py").write_text(block.code, encoding="utf-8")
    done = run(["snippet.py"], tmp_path)
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr}"


@pytest.mark.parametrize("block", blocks_of("excerpt"))
def test_excerpt_stands_in_its_file(block: Block):
    """An excerpt's runs of lines stand, in order, in the file it quotes."""
    source = [line.strip() for line in (REPO / block.arg).read_text().splitlines()]
    at = 0
    runs: list[list[str]] = [[]]
    for line in block.code.splitlines():
        if line.strip() == "...":
            runs.append([])
        elif line.strip():
            runs[-1].append(line.strip())
    for part in filter(None, runs):
        for start in range(at, len(source) - len(part) + 1):
            if source[start : start + len(part)] == part:
                at = start + len(part)
                break
        else:
            pytest.fail(f"{block.id}: not in {block.arg} (in order): {part[0]!r}")


def check_login(client: httpx.Client) -> None:
    """Sign up, log in, and fail with a wrong password and an unknown user."""
    right = {"username": "ada", "password": PASSWORD}
    assert client.post("/signup", json=right).status_code == 201
    assert client.post("/login", json=right).status_code == 200
    assert client.post("/login", json={**right, "password": "wrong"}).status_code == 401
    assert client.post("/login", json={**right, "username": "bob"}).status_code == 401


def check_fastapi_users_login(client: httpx.Client) -> None:
    """Register, log in for a JWT, and fail with a wrong password."""
    email = "ada@example.org"
    created = client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert created.status_code == 201, created.text
    login = client.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["access_token"]
    wrong = client.post("/auth/jwt/login", data={"username": email, "password": "wrong"})
    assert wrong.status_code == 400


def check_metrics(client: httpx.Client) -> None:
    """GET /metrics answers Prometheus text with loopsafe's pool series."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'loopsafe_max_workers{pool="default"}' in response.text
    assert "loopsafe_service_seconds_bucket" in response.text


CHECKS = {
    "login": check_login,
    "fastapi-users-login": check_fastapi_users_login,
    "metrics": check_metrics,
}
SERVERS = {
    "asgi": uvicorn("app:app"),
    "aiohttp": ["-m", "aiohttp.web", "-H", "127.0.0.1", "app:make_app", "-P"],
}


@pytest.mark.slow
@pytest.mark.parametrize("block", blocks_of("app"))
def test_app_serves(block: Block, tmp_path: Path):
    """An app block, saved as app.py and served on 127.0.0.1, answers its check over HTTP."""
    server, check = block.arg.split()
    (tmp_path / "app.py").write_text(block.code, encoding="utf-8")
    env = snippet_env(tmp_path)
    with (
        serving(SERVERS[server], env=env, cwd=tmp_path) as (base, _),
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        CHECKS[check](client)


def django_files(page: str) -> list[Block]:
    """Return the Django blocks that make ``page``'s project, its base page's first."""
    own = [b for b in PYTHON if b.page == page and b.kind == "django"]
    if page in {"README.md", DJANGO_BASE}:
        return own
    base = [b for b in PYTHON if b.page == DJANGO_BASE and b.kind == "django"]
    return base + own


DJANGO_PAGES = sorted({b.page for b in PYTHON if b.kind == "django"})


def build_django_project(page: str, folder: Path) -> None:
    """Run ``startproject mysite .`` in ``folder`` and lay ``page``'s files over it."""
    made = run(["-m", "django", "startproject", "mysite", str(folder)], folder)
    assert made.returncode == 0, made.stderr
    for block in django_files(page):
        target, _, how = block.arg.partition(" ")
        path = folder / target
        if how == "(append)":
            path.write_text(path.read_text() + "\n" + block.code, encoding="utf-8")
        else:
            assert not how, f"{block.id}: unknown option {how!r}"
            path.write_text(block.code, encoding="utf-8")


def manage(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py ARGS`` in the project; fail the test if it fails."""
    done = run(["manage.py", *args], folder)
    assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
@pytest.mark.skipif(django.VERSION < (5, 0), reason="the documented view uses alogin (5.0+)")
@pytest.mark.parametrize("page", DJANGO_PAGES)
def test_django_project_checks_clean_and_logs_in(page: str, tmp_path: Path):
    """The page's Django project passes manage.py check and logs a user in through uvicorn."""
    build_django_project(page, tmp_path)
    manage(tmp_path, "migrate", "--verbosity", "0")
    checked = manage(tmp_path, "check")
    assert checked.stdout.strip() == "System check identified no issues (0 silenced).", (
        checked.stdout + checked.stderr
    )
    assert "WARNING" not in checked.stderr
    create = (
        "from django.contrib.auth.models import User; User.objects.create_user('ada', '', {!r})"
    )
    manage(tmp_path, "shell", "-c", create.format(PASSWORD))
    env = {**snippet_env(tmp_path), "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    with (
        serving(uvicorn("mysite.asgi:application"), env=env, cwd=tmp_path) as (base, _),
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        token = client.get("/login").json()["csrftoken"]
        headers = {"X-CSRFToken": token}
        wrong = client.post("/login", data={"username": "ada", "password": "x"}, headers=headers)
        assert wrong.status_code == 401
        right = client.post(
            "/login", data={"username": "ada", "password": PASSWORD}, headers=headers
        )
        assert right.status_code == 200, right.text
        assert "sessionid" in client.cookies
        if "metrics" in (tmp_path / "mysite" / "urls.py").read_text():
            check_metrics(client)


# --- console and bash blocks: the paths, extras and options they name exist ---

SHELL = [b for b in BLOCKS if b.lang in {"console", "bash", "sh", "shell"}]
_PATH = re.compile(r"(?<![\w./-])((?:examples|benchmarks|tests|docs|src|\.ci)/[\w./-]*[\w/])")
_MODULE = re.compile(r"\b(examples\.\w+):\w+")
_EXTRAS = re.compile(r"loopsafe\[([\w,-]+)\]")
_CLI = re.compile(r"\bloopsafe (bench|storm|calibrate|\w+)((?: [^#|;&]*)?)")
_SCRIPT = re.compile(r"python (benchmarks/[\w/]+\.py)((?: [^#|;&]*)?)")


def shell_lines() -> list[tuple[str, str]]:
    """Return every command line of the console/bash blocks, with its block's id."""
    return [(b.id, line) for b in SHELL for line in b.code.splitlines() if line.strip()]


def test_shell_blocks_name_paths_that_exist():
    """Every repository path and example module a console block names exists."""
    assert SHELL
    for where, line in shell_lines():
        for path in _PATH.findall(line):
            assert (REPO / path).exists(), f"{where}: {path} does not exist"
        for module in _MODULE.findall(line):
            assert (REPO / (module.replace(".", "/") + ".py")).exists(), f"{where}: {module}"


def declared_extras() -> set[str]:
    """Return the extras pyproject.toml declares (read as text: tomllib is 3.11+)."""
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+) = \[", section, flags=re.MULTILINE))


def test_shell_blocks_name_extras_that_exist():
    """Every ``loopsafe[...]`` extra a console block installs is declared in pyproject.toml."""
    extras = declared_extras()
    named = {
        e for _, line in shell_lines() for group in _EXTRAS.findall(line) for e in group.split(",")
    }
    assert named, "no install line found"
    assert named <= extras, f"unknown extras: {sorted(named - extras)}"


def options_of(argv: list[str]) -> str:
    """Return the ``--help`` text of a command run by this interpreter."""
    done = run([*argv, "--help"], REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_shell_blocks_give_options_that_exist():
    """The options given to ``loopsafe COMMAND`` and to benchmark scripts are in their --help."""
    commands: dict[tuple[str, ...], set[str]] = {}
    for _, line in shell_lines():
        for command, rest in _CLI.findall(line):
            if command in {"bench", "storm", "calibrate"}:
                commands.setdefault(("-m", "loopsafe", command), set()).update(
                    re.findall(r"--[\w-]+", rest)
                )
        for script, rest in _SCRIPT.findall(line):
            commands.setdefault((script,), set()).update(re.findall(r"--[\w-]+", rest))
    assert ("-m", "loopsafe", "bench") in commands
    for argv, options in commands.items():
        if not options:
            continue
        text = options_of(list(argv))
        missing = {o for o in options if o not in text}
        assert not missing, f"{' '.join(argv)}: no option {sorted(missing)}"


def test_all_extra_holds_every_other_extra():
    """``pip install 'loopsafe[all]'`` installs every integration and tool (all but test)."""
    text = (REPO / "pyproject.toml").read_text()
    listed = re.search(r'^all = \[\s*"loopsafe\[([\w,-]+)\]",?\s*\]', text, flags=re.MULTILINE)
    assert listed is not None
    assert set(listed.group(1).split(",")) == declared_extras() - {"all", "test"}


def test_install_hints_name_extras_that_exist():
    """Every ``pip install 'loopsafe[...]'`` hint in an error message names a declared extra."""
    sources = sorted((REPO / "src" / "loopsafe").rglob("*.py"))
    hinted = {
        extra
        for path in sources
        for group in _EXTRAS.findall(path.read_text(encoding="utf-8"))
        for extra in group.split(",")
    }
    assert {"django", "starlette", "litestar", "aiohttp", "prometheus"} <= hinted
    assert hinted <= declared_extras(), sorted(hinted - declared_extras())


def slug(heading: str) -> str:
    """Return GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


_LINK = re.compile(r"\]\(([^)\s]+)\)")
_BLOCK = re.MULTILINE | re.DOTALL


def test_relative_links_and_anchors_resolve():
    """Every relative link of README.md, docs/ and the project files names a file and heading."""
    pages = [*PAGES, REPO / "CONTRIBUTING.md", REPO / "SECURITY.md"]
    for page in pages:
        text = re.sub(r"^```.*?^```$", "", page.read_text(encoding="utf-8"), flags=_BLOCK)
        for target in _LINK.findall(re.sub(r"`[^`\n]*`", "", text)):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target} does not exist"
            if anchor and linked.suffix == ".md":
                headings = re.findall(
                    r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.MULTILINE
                )
                assert anchor in {slug(h) for h in headings}, f"{page.name}: no #{anchor}"


INSTALL = (
    "python3 -m venv .venv && .venv/bin/pip install -U pip && .venv/bin/pip install -e '.[test]'"
)
TEST = ".venv/bin/python -m pytest"


def test_ci_runs_the_install_and_test_commands_the_readme_shows():
    """README.md and CONTRIBUTING.md show the install and test commands that .ci/run runs."""
    for page in ("README.md", "CONTRIBUTING.md"):
        lines = {line for _, line in shell_lines()} | set(
            (REPO / page).read_text(encoding="utf-8").splitlines()
        )
        assert INSTALL in lines, page
        assert TEST in lines, page
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert INSTALL.replace("python3", '"$PYTHON"').replace(" install ", " install -q ") in ci
    assert "run_pytest .venv/bin/python\n" in ci
    assert '"$py" -m pytest "$@"' in ci
