"""Container limits read from synthetic cgroup trees laid out as the kernel lays them out.

Each test writes ``proc/self/cgroup``, ``proc/self/mountinfo`` and the cgroup
files under a temporary directory that stands for ``/``, then calls
`loopsafe._limits.detect` on it. The mountinfo lines are real kernel lines
(from a Kubernetes node on cgroup v2, a Docker container on cgroup v1, and a
hybrid systemd host), with only the paths changed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loopsafe
from _support import report
from loopsafe import _cgroup, _limits
from loopsafe._limits import ContainerLimits, detect

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

GIB = 1 << 30
MIB = 1 << 20
PHYSICAL = 64 * GIB
AFFINITY = 8

V2_MOUNT = (
    "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 "
    "- cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"
)
V1_CPU_MOUNT = (
    "33 25 0:28 {root} /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime "
    "- cgroup cgroup rw,cpu,cpuacct"
)
V1_MEMORY_MOUNT = (
    "35 25 0:30 {root} /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime "
    "- cgroup cgroup rw,memory"
)
OTHER_MOUNTS = (
    "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
    "25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755\n"
)
V1_UNLIMITED = "9223372036854771712"  # how v1 writes "no limit" (LONG_MAX, page-rounded)
LEAF_V2 = "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope"
POD_V2 = "/kubepods.slice/kubepods-pod1.slice"


def lay_out(root: Path, proc_cgroup: str, mountinfo: str, files: Mapping[str, str]) -> Path:
    """Write a synthetic machine under ``root``: the two /proc files and the cgroup files."""
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/cgroup").write_text(proc_cgroup)
    (root / "proc/self/mountinfo").write_text(OTHER_MOUNTS + mountinfo + "\n")
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def v2_machine(root: Path, files: Mapping[str, str], *, leaf: str = LEAF_V2) -> Path:
    """A cgroup v2 host view (cgroupns=host): the whole hierarchy mounted at /sys/fs/cgroup."""
    base = "/sys/fs/cgroup"
    tree = {f"{base}{path}": text for path, text in files.items()}
    (root / base.lstrip("/") / leaf.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return lay_out(root, f"0::{leaf}\n", V2_MOUNT, tree)


def v1_machine(
    root: Path,
    files: Mapping[str, str],
    *,
    leaf: str = "/system.slice/app.service",
    mount_root: str = "/",
) -> Path:
    """A cgroup v1 view: cpu,cpuacct and memory hierarchies mounting ``mount_root``.

    ``files`` keys are ``cpu:<path inside the mount>`` or ``memory:<path inside the mount>``.
    """
    proc = f"12:pids:{leaf}\n11:memory:{leaf}\n4:cpu,cpuacct:{leaf}\n1:name=systemd:{leaf}\n0::/\n"
    mountinfo = "\n".join(
        (V1_CPU_MOUNT.format(root=mount_root), V1_MEMORY_MOUNT.format(root=mount_root))
    )
    tree = {}
    for key, text in files.items():
        controller, _, path = key.partition(":")
        point = "/sys/fs/cgroup/cpu,cpuacct" if controller == "cpu" else "/sys/fs/cgroup/memory"
        tree[point + path] = text
    return lay_out(root, proc, mountinfo, tree)


def run(root: Path, **kwargs: object) -> ContainerLimits:
    """Detect on a synthetic machine with 8 CPUs of affinity and 64 GiB of memory."""
    options: dict[str, object] = {
        "affinity": AFFINITY,
        "physical_memory": PHYSICAL,
        "environ": {},
    }
    options.update(kwargs)
    return detect(root, **options)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    """Each test sees loopsafe's say-it-once warnings afresh."""
    _limits._warned.clear()


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warning lines loopsafe.limits logged."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "loopsafe.limits" and r.levelno >= logging.WARNING
    ]


class TestCgroupV2:
    """cgroup v2: ``cpu.max`` and ``memory.max`` on the leaf and its visible ancestors."""

    def test_limit_on_the_leaf(self, tmp_path: Path) -> None:
        """A leaf ``cpu.max 200000 100000`` gives 2 workers and says where it came from."""
        limits = run(v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "200000 100000"}))
        assert limits.cpus == 2
        assert limits.cpu_limit == 2
        assert limits.cpu_quota == 2.0
        assert limits.source == "cgroup_v2"
        assert limits.cpu_source == f"cgroup v2 {LEAF_V2}: cpu.max 200000 100000"
        assert limits.describe().startswith(f"cgroup v2 {LEAF_V2}: cpu.max 200000 100000 -> 2 ")

    def test_limit_on_an_ancestor_only(self, tmp_path: Path) -> None:
        """An unlimited leaf under a pod limited to 1.5 CPUs gives 2 workers (golang/go#81180)."""
        files = {f"{LEAF_V2}/cpu.max": "max 100000", f"{POD_V2}/cpu.max": "150000 100000"}
        limits = run(v2_machine(tmp_path, files))
        assert limits.cpus == 2
        assert limits.cpu_quota == 1.5
        assert limits.cpu_source == f"cgroup v2 {POD_V2}: cpu.max 150000 100000"

    @pytest.mark.parametrize(
        ("leaf", "pod", "expected", "where"),
        [
            pytest.param("300000 100000", "100000 100000", 1, POD_V2, id="ancestor-tighter"),
            pytest.param("100000 100000", "400000 100000", 1, LEAF_V2, id="leaf-tighter"),
            pytest.param("250000 100000", "50000 20000", 3, LEAF_V2, id="other-periods"),
        ],
    )
    def test_limit_on_both(
        self, tmp_path: Path, leaf: str, pod: str, expected: int, where: str
    ) -> None:
        """With limits on the leaf and an ancestor, the tightest (in CPUs) wins."""
        files = {f"{LEAF_V2}/cpu.max": leaf, f"{POD_V2}/cpu.max": pod}
        limits = run(v2_machine(tmp_path, files))
        assert limits.cpus == expected
        assert limits.cpu_source is not None
        assert limits.cpu_source.startswith(f"cgroup v2 {where}: ")

    def test_max_everywhere_is_no_limit(self, tmp_path: Path) -> None:
        """``max`` on every level is no limit: the affinity count, as before."""
        files = {
            f"{LEAF_V2}/cpu.max": "max 100000",
            f"{POD_V2}/cpu.max": "max 100000",
            f"{LEAF_V2}/memory.max": "max",
        }
        limits = run(v2_machine(tmp_path, files))
        assert limits == ContainerLimits(cpus=AFFINITY, affinity=AFFINITY, source="none")
        assert limits.describe() == (
            "no cgroup CPU limit -> 8 workers (CPU affinity); no cgroup memory limit"
        )

    @pytest.mark.parametrize(
        ("cpu_max", "expected"),
        [
            pytest.param("50000 100000", 1, id="half-a-cpu-is-one"),
            pytest.param("100001 100000", 2, id="rounded-up"),
            pytest.param("1000 100000", 1, id="tiny-quota-is-one"),
            pytest.param("1600000 100000", AFFINITY, id="capped-by-affinity"),
        ],
    )
    def test_rounding_and_bounds(self, tmp_path: Path, cpu_max: str, expected: int) -> None:
        """The limit is ceil(quota / period), never below 1 and never above the affinity count."""
        limits = run(v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": cpu_max}))
        assert limits.cpus == expected

    def test_more_quota_than_affinity_says_both(self, tmp_path: Path) -> None:
        """A quota above the affinity count keeps the affinity count and says so."""
        limits = run(v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "1600000 100000"}))
        assert limits.cpu_limit == 16
        assert "-> 16 CPUs, affinity 8 -> 8 workers" in limits.describe()

    def test_weight_is_not_a_limit(self, tmp_path: Path) -> None:
        """``cpu.weight`` (a Kubernetes request) is ignored: it shares CPU, it does not limit it."""
        files = {f"{LEAF_V2}/cpu.weight": "79", f"{LEAF_V2}/cpu.max": "max 100000"}
        assert run(v2_machine(tmp_path, files)).cpus == AFFINITY

    def test_memory_on_leaf_and_ancestor(self, tmp_path: Path) -> None:
        """The tightest ``memory.max`` wins; half of it is the hashing budget."""
        files = {
            f"{LEAF_V2}/cpu.max": "200000 100000",
            f"{LEAF_V2}/memory.max": str(2 * GIB),
            f"{POD_V2}/memory.max": str(GIB),
        }
        limits = run(v2_machine(tmp_path, files))
        assert limits.memory_limit == GIB
        assert limits.hashing_memory == 512 * MIB
        assert limits.memory_source == f"cgroup v2 {POD_V2}: memory.max 1 GiB"
        assert limits.describe() == (
            f"cgroup v2 {LEAF_V2}: cpu.max 200000 100000 -> 2 workers; "
            f"cgroup v2 {POD_V2}: memory.max 1 GiB -> 512 MiB for hashing"
        )

    def test_memory_above_physical_is_none(self, tmp_path: Path) -> None:
        """A memory limit at or above physical memory binds nothing and counts as none."""
        files = {f"{LEAF_V2}/memory.max": str(PHYSICAL)}
        assert run(v2_machine(tmp_path, files)).memory_limit is None

    def test_nested_namespace_reads_the_mount_root(self, tmp_path: Path) -> None:
        """In a cgroup namespace ``0::/`` is the container's own cgroup: read the mount root."""
        files = {"/cpu.max": "100000 100000", "/memory.max": str(GIB)}
        limits = run(v2_machine(tmp_path, files, leaf="/"))
        assert limits.cpus == 1
        assert limits.cpu_source == "cgroup v2 /: cpu.max 100000 100000"
        assert limits.memory_limit == GIB

    def test_nested_namespace_with_a_child_cgroup(self, tmp_path: Path) -> None:
        """A process in a child of the namespace root still sees the root's limit (an ancestor)."""
        files = {"/cpu.max": "100000 100000", "/app/cpu.max": "max 100000"}
        assert run(v2_machine(tmp_path, files, leaf="/app")).cpus == 1

    def test_non_root_v2_mount(self, tmp_path: Path) -> None:
        """A v2 mount of the container's own subtree (cgroupns=host bind mount) is resolved."""
        mount = V2_MOUNT.replace(" / /sys/fs/cgroup ", f" {POD_V2} /sys/fs/cgroup ")
        root = lay_out(
            tmp_path,
            f"0::{LEAF_V2}\n",
            mount,
            {
                "/sys/fs/cgroup/cri-containerd-abc.scope/cpu.max": "max 100000",
                "/sys/fs/cgroup/cpu.max": "300000 100000",
            },
        )
        limits = run(root)
        assert limits.cpus == 3
        assert limits.cpu_source == f"cgroup v2 {POD_V2}: cpu.max 300000 100000"

    def test_outside_the_namespace_is_not_visible(self, tmp_path: Path) -> None:
        """A cgroup shown as ``/../x`` (outside the namespace) has no visible limit."""
        root = v2_machine(tmp_path, {"/cpu.max": "100000 100000"}, leaf="/")
        (root / "proc/self/cgroup").write_text("0::/../other\n")
        assert run(root).cpus == AFFINITY

    def test_mount_of_another_cgroup_is_not_used(self, tmp_path: Path) -> None:
        """A mount showing another container's cgroup is not read as ours."""
        mount = V2_MOUNT.replace(" / /sys/fs/cgroup ", " /kubepods.slice/other /sys/fs/cgroup ")
        root = lay_out(tmp_path, f"0::{LEAF_V2}\n", mount, {"/sys/fs/cgroup/cpu.max": "1 100000"})
        assert run(root).cpus == AFFINITY

    def test_bad_escape_in_mountinfo(self, tmp_path: Path) -> None:
        r"""A non-octal escape (``\089``) in mountinfo is kept as text, never raised."""
        mount = V2_MOUNT.replace("/sys/fs/cgroup", "/cg\\089")
        root = lay_out(tmp_path, "0::/app\n", mount, {"/cg\\089/app/cpu.max": "200000 100000"})
        assert run(root).cpus == 2

    def test_escaped_mount_point(self, tmp_path: Path) -> None:
        r"""A mount point with a space (``\040`` in mountinfo) is found."""
        mount = V2_MOUNT.replace("/sys/fs/cgroup", "/cgroup\\040root")
        root = lay_out(tmp_path, "0::/app\n", mount, {"/cgroup root/app/cpu.max": "200000 100000"})
        assert run(root).cpus == 2


class TestCgroupV1:
    """cgroup v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` and ``memory.limit_in_bytes``."""

    def test_limit_on_the_leaf(self, tmp_path: Path) -> None:
        """A leaf quota of 150000 per 100000 gives 2 workers."""
        leaf = "/system.slice/app.service"
        files = {
            f"cpu:{leaf}/cpu.cfs_quota_us": "150000",
            f"cpu:{leaf}/cpu.cfs_period_us": "100000",
            "cpu:/cpu.cfs_quota_us": "-1",
            "cpu:/cpu.cfs_period_us": "100000",
        }
        limits = run(v1_machine(tmp_path, files))
        assert limits.cpus == 2
        assert limits.source == "cgroup_v1"
        assert limits.cpu_source == (
            f"cgroup v1 {leaf}: cpu.cfs_quota_us 150000 / cpu.cfs_period_us 100000"
        )

    def test_limit_on_an_ancestor_only(self, tmp_path: Path) -> None:
        """A quota on the parent slice applies to an unlimited leaf."""
        files = {
            "cpu:/system.slice/app.service/cpu.cfs_quota_us": "-1",
            "cpu:/system.slice/app.service/cpu.cfs_period_us": "100000",
            "cpu:/system.slice/cpu.cfs_quota_us": "100000",
            "cpu:/system.slice/cpu.cfs_period_us": "100000",
        }
        limits = run(v1_machine(tmp_path, files))
        assert limits.cpus == 1
        assert limits.cpu_source is not None
        assert limits.cpu_source.startswith("cgroup v1 /system.slice: ")

    def test_limit_on_both(self, tmp_path: Path) -> None:
        """With quotas on the leaf and its parent, the tighter wins."""
        files = {
            "cpu:/system.slice/app.service/cpu.cfs_quota_us": "300000",
            "cpu:/system.slice/app.service/cpu.cfs_period_us": "100000",
            "cpu:/system.slice/cpu.cfs_quota_us": "200000",
            "cpu:/system.slice/cpu.cfs_period_us": "100000",
        }
        assert run(v1_machine(tmp_path, files)).cpus == 2

    def test_no_quota(self, tmp_path: Path) -> None:
        """``-1`` everywhere (this machine's case) leaves the affinity count."""
        files = {
            "cpu:/system.slice/app.service/cpu.cfs_quota_us": "-1",
            "cpu:/system.slice/app.service/cpu.cfs_period_us": "100000",
            "cpu:/cpu.cfs_quota_us": "-1",
            "memory:/system.slice/app.service/memory.limit_in_bytes": V1_UNLIMITED,
        }
        limits = run(v1_machine(tmp_path, files))
        assert limits.cpus == AFFINITY
        assert limits.memory_limit is None
        assert limits.source == "none"

    def test_non_root_mount(self, tmp_path: Path) -> None:
        """Docker on v1 mounts ``/docker/<id>`` itself: its limit is at the mount point.

        This is the case Go 1.25 missed (golang/go#76390).
        """
        files = {
            "cpu:/cpu.cfs_quota_us": "100000",
            "cpu:/cpu.cfs_period_us": "100000",
            "memory:/memory.limit_in_bytes": str(GIB),
        }
        root = v1_machine(tmp_path, files, leaf="/docker/0123abcd", mount_root="/docker/0123abcd")
        limits = run(root)
        assert limits.cpus == 1
        assert limits.cpu_source == (
            "cgroup v1 /docker/0123abcd: cpu.cfs_quota_us 100000 / cpu.cfs_period_us 100000"
        )
        assert limits.memory_limit == GIB

    def test_non_root_mount_process_deeper(self, tmp_path: Path) -> None:
        """Under a non-root mount, a process in a child cgroup finds the mount's limit above it."""
        files = {
            "cpu:/cpu.cfs_quota_us": "200000",
            "cpu:/cpu.cfs_period_us": "100000",
            "cpu:/workers/cpu.cfs_quota_us": "-1",
            "cpu:/workers/cpu.cfs_period_us": "100000",
        }
        root = v1_machine(tmp_path, files, leaf="/docker/ab/workers", mount_root="/docker/ab")
        limits = run(root)
        assert limits.cpus == 2
        assert limits.cpu_source is not None
        assert limits.cpu_source.startswith("cgroup v1 /docker/ab: ")

    def test_memory_unlimited_is_none(self, tmp_path: Path) -> None:
        """v1's "unlimited" (a huge number above physical memory) is no limit."""
        files = {"memory:/system.slice/app.service/memory.limit_in_bytes": V1_UNLIMITED}
        assert run(v1_machine(tmp_path, files)).memory_limit is None

    def test_memory_tightest_ancestor(self, tmp_path: Path) -> None:
        """The tightest ``memory.limit_in_bytes`` of the leaf and its ancestors wins."""
        files = {
            "memory:/system.slice/app.service/memory.limit_in_bytes": str(2 * GIB),
            "memory:/system.slice/memory.limit_in_bytes": str(GIB),
            "memory:/memory.limit_in_bytes": V1_UNLIMITED,
        }
        limits = run(v1_machine(tmp_path, files))
        assert limits.memory_limit == GIB
        assert limits.memory_source == "cgroup v1 /system.slice: memory.limit_in_bytes 1 GiB"
        assert loopsafe_budget(limits) == 512 * MIB

    def test_memory_hierarchical_limit_sees_hidden_ancestors(self, tmp_path: Path) -> None:
        """v1's ``hierarchical_memory_limit`` covers ancestors above the mount root, too."""
        files = {
            "memory:/memory.limit_in_bytes": V1_UNLIMITED,
            "memory:/memory.stat": f"cache 0\nrss 0\nhierarchical_memory_limit {768 * MIB}\n",
        }
        root = v1_machine(tmp_path, files, leaf="/docker/ab", mount_root="/docker/ab")
        limits = run(root)
        assert limits.memory_limit == 768 * MIB
        assert limits.memory_source == (
            "cgroup v1 /docker/ab: memory.stat hierarchical_memory_limit 768 MiB"
        )

    def test_hybrid_host_uses_the_v1_controller(self, tmp_path: Path) -> None:
        """On a hybrid host (v1 controllers, empty v2 mounted too) the v1 quota is read."""
        files = {
            "cpu:/system.slice/app.service/cpu.cfs_quota_us": "100000",
            "cpu:/system.slice/app.service/cpu.cfs_period_us": "100000",
        }
        root = v1_machine(tmp_path, files)
        with (root / "proc/self/mountinfo").open("a") as mountinfo:
            mountinfo.write(V2_MOUNT.replace("/sys/fs/cgroup ", "/sys/fs/cgroup/unified ") + "\n")
        assert run(root).cpus == 1


def loopsafe_budget(limits: ContainerLimits) -> int | None:
    """The hashing budget these limits give (half the memory limit)."""
    return limits.hashing_memory


class TestMissingUnreadableGarbage:
    """Files that are missing, unreadable or hold garbage fall back and never raise."""

    def test_no_proc(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """No ``/proc/self/cgroup`` (macOS, Windows, no procfs): the affinity count, no warning."""
        caplog.set_level(logging.DEBUG, "loopsafe.limits")
        limits = run(tmp_path)
        assert limits == ContainerLimits(cpus=AFFINITY, affinity=AFFINITY)
        assert warnings_from(caplog) == []

    def test_missing_limit_files(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A cgroup with no limit files (controller not enabled) is no limit, and no warning."""
        limits = run(v2_machine(tmp_path, {}))
        assert limits.cpus == AFFINITY
        assert limits.memory_limit is None
        assert warnings_from(caplog) == []

    def test_missing_period_on_v1(self, tmp_path: Path) -> None:
        """A v1 quota without its period file is no limit at that level."""
        files = {"cpu:/system.slice/app.service/cpu.cfs_quota_us": "100000"}
        assert run(v1_machine(tmp_path, files)).cpus == AFFINITY

    def test_directory_where_a_file_is_expected(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unreadable ``cpu.max`` (a directory here) is skipped, said once, and the rest used."""
        root = v2_machine(tmp_path, {f"{POD_V2}/cpu.max": "200000 100000"})
        (root / "sys/fs/cgroup" / LEAF_V2.lstrip("/") / "cpu.max").mkdir()
        first = run(root)
        second = run(root)
        assert first.cpus == second.cpus == 2
        assert len(first.problems) == 1
        assert first.problems[0].endswith("cri-containerd-abc.scope/cpu.max")
        messages = warnings_from(caplog)
        assert len(messages) == 1
        assert "cannot be read (IsADirectoryError)" in messages[0]

    def test_permission_denied(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A file the process may not read (PermissionError) falls back to the affinity, once said.

        Tests run as root, who reads even ``chmod 000`` files, so the reader is injected.
        """
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "100000 100000"})

        def read(path: Path) -> str:
            if path.name == "cpu.max" and path.exists():
                raise PermissionError(13, "Permission denied", str(path))
            return path.read_text()

        assert run(root, read=read).cpus == AFFINITY
        assert run(root, read=read).cpus == AFFINITY
        messages = warnings_from(caplog)
        assert len(messages) == 1
        assert "PermissionError" in messages[0]

    def test_unreadable_proc(self, tmp_path: Path) -> None:
        """An unreadable ``/proc/self/mountinfo`` gives the affinity count."""
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "100000 100000"})

        def read(path: Path) -> str:
            if path.name == "mountinfo":
                raise OSError(5, "Input/output error")
            return path.read_text()

        assert run(root, read=read).cpus == AFFINITY

    @pytest.mark.parametrize(
        "garbage",
        [
            pytest.param("banana", id="word"),
            pytest.param("200000", id="quota-without-period"),
            pytest.param("-1 100000", id="negative-quota"),
            pytest.param("200000 0", id="zero-period"),
            pytest.param("0 100000", id="zero-quota"),
            pytest.param("1e5 100000", id="float"),
            pytest.param("", id="empty"),
            pytest.param("200000 100000 7", id="three-fields"),
            pytest.param("max max", id="max-period"),
            pytest.param("\x00\xff\ufffd", id="binary"),
            pytest.param("\u00b2 100000", id="unicode-digit"),
            pytest.param("\u0663 100000", id="arabic-indic-digit"),
        ],
    )
    def test_garbage_cpu_max(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: str
    ) -> None:
        """Garbage in the leaf's ``cpu.max`` is skipped (said once); the ancestor's limit stands."""
        files = {f"{LEAF_V2}/cpu.max": garbage, f"{POD_V2}/cpu.max": "300000 100000"}
        root = v2_machine(tmp_path, files)
        assert run(root).cpus == 3
        assert run(root).cpus == 3
        assert len(warnings_from(caplog)) == 1

    @pytest.mark.parametrize(
        ("name", "garbage"),
        [
            pytest.param("cpu.cfs_quota_us", "lots", id="quota-word"),
            pytest.param("cpu.cfs_quota_us", "0", id="quota-zero"),
            pytest.param("cpu.cfs_quota_us", "-5", id="quota-negative"),
            pytest.param("cpu.cfs_period_us", "0", id="period-zero"),
            pytest.param("cpu.cfs_period_us", "x", id="period-word"),
        ],
    )
    def test_garbage_v1_cpu(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, garbage: str
    ) -> None:
        """Garbage in a v1 quota or period falls back to the affinity count, said once."""
        leaf = "/system.slice/app.service"
        files = {
            f"cpu:{leaf}/cpu.cfs_quota_us": "100000",
            f"cpu:{leaf}/cpu.cfs_period_us": "100000",
        }
        files[f"cpu:{leaf}/{name}"] = garbage
        root = v1_machine(tmp_path, files)
        assert run(root).cpus == AFFINITY
        assert run(root).cpus == AFFINITY
        assert len(warnings_from(caplog)) == 1

    @pytest.mark.parametrize("garbage", ["lots", "-1", "1.5G", "0", "max max"])
    def test_garbage_memory(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: str
    ) -> None:
        """Garbage in ``memory.max`` is no memory limit, said once; the CPU limit still applies."""
        files = {f"{LEAF_V2}/memory.max": garbage, f"{LEAF_V2}/cpu.max": "100000 100000"}
        limits = run(v2_machine(tmp_path, files))
        assert limits.memory_limit is None
        assert limits.cpus == 1
        assert len(warnings_from(caplog)) == 1

    def test_garbage_proc_files(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """Lines of ``/proc/self/cgroup`` and mountinfo that do not parse are skipped."""
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "200000 100000"})
        with (root / "proc/self/cgroup").open("a") as proc:
            proc.write("garbage line\n7:cpu\n")
        with (root / "proc/self/mountinfo").open("a") as mountinfo:
            mountinfo.write("1 2 3\n")
        assert run(root).cpus == 2
        assert len(warnings_from(caplog)) == 3

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        proc=st.text(max_size=120),
        mountinfo=st.text(max_size=200),
        cpu_max=st.text(max_size=40),
        memory_max=st.text(max_size=40),
    )
    def test_random_text_never_raises(
        self, tmp_path: Path, proc: str, mountinfo: str, cpu_max: str, memory_max: str
    ) -> None:
        """Any text in any of the files gives an answer between 1 and the affinity count."""
        files = {"cpu.max": cpu_max, "memory.max": memory_max, "/proc": proc, "/mi": mountinfo}

        def read(path: Path) -> str:
            if path.name == "cgroup":
                return files["/proc"] + f"\n0::{LEAF_V2}\n"
            if path.name == "mountinfo":
                return files["/mi"] + "\n" + V2_MOUNT
            if path.name in files:
                return files[path.name]
            raise FileNotFoundError(path)

        limits = run(tmp_path, read=read)
        assert 1 <= limits.cpus <= AFFINITY
        limits.describe()


class TestSwitchesAndThisMachine:
    """The environment switch, and what happens on the machine the tests run on."""

    @pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
    def test_env_turns_detection_off(self, tmp_path: Path, value: str) -> None:
        """``LOOPSAFE_CGROUP_DETECT=0`` ignores a quota: the affinity count, and says why."""
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "100000 100000"})
        limits = run(root, environ={_limits.DETECT_ENV: value})
        assert limits.cpus == AFFINITY
        assert limits.source == "disabled"
        assert limits.describe().startswith("cgroup detection off (LOOPSAFE_CGROUP_DETECT=0)")

    def test_env_on_is_the_default(self, tmp_path: Path) -> None:
        """Any other value (``1``) keeps detection on."""
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "100000 100000"})
        assert run(root, environ={_limits.DETECT_ENV: "1"}).cpus == 1

    def test_this_machine_unchanged_without_a_quota(self) -> None:
        """Where no CPU quota applies (this cgroup v1 machine), the count is the affinity count."""
        limits = detect()
        if limits.cpu_limit is not None:
            pytest.skip(f"this machine has a CPU quota: {limits.describe()}")
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        if affinity is not None and not hasattr(os, "process_cpu_count"):
            assert limits.cpus == affinity
        assert loopsafe.usable_cpus() == limits.affinity == _limits._affinity_cpus()
        assert loopsafe.HashPool().max_workers == limits.affinity

    def test_as_dict_is_json_ready(self, tmp_path: Path) -> None:
        """The bench report's ``machine.container`` entry names the limit and where it came from."""
        files = {f"{LEAF_V2}/cpu.max": "200000 100000", f"{LEAF_V2}/memory.max": str(GIB)}
        entry = run(v2_machine(tmp_path, files)).as_dict()
        assert entry["source"] == "cgroup_v2"
        assert entry["cpus"] == 2
        assert entry["hashing_memory"] == 512 * MIB
        assert entry["cpu_from"] == f"cgroup v2 {LEAF_V2}: cpu.max 200000 100000"


class _Subscriber:
    """Records the limits it is told about (a stand-in for a pool that follows them)."""

    def __init__(self) -> None:
        self.seen: list[ContainerLimits] = []
        self.changed = threading.Event()

    def on_limits(self, limits: ContainerLimits) -> None:
        self.seen.append(limits)
        self.changed.set()


class TestWatcher:
    """The cache re-reads the files on its own thread and tells subscribers of changes."""

    def test_change_reaches_subscribers(self, tmp_path: Path) -> None:
        """Shrinking ``cpu.max`` reaches a subscriber within a few intervals, off the caller."""
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "400000 100000"})
        watcher = _limits._Watcher(lambda: run(root), interval=0.02)
        try:
            subscriber = _Subscriber()
            watcher.subscribe(subscriber.on_limits)
            assert watcher.get().cpus == 4
            (root / "sys/fs/cgroup" / LEAF_V2.lstrip("/") / "cpu.max").write_text("100000 100000")
            assert subscriber.changed.wait(10)
            assert subscriber.seen[-1].cpus == 1
            assert watcher.get().cpus == 1
        finally:
            watcher.close()

    def test_subscriber_is_held_weakly(self, tmp_path: Path) -> None:
        """A collected subscriber is dropped, not kept alive by the watcher."""
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "400000 100000"})
        watcher = _limits._Watcher(lambda: run(root), interval=3600)
        subscriber = _Subscriber()
        watcher.subscribe(subscriber.on_limits)
        del subscriber
        gc.collect()
        watcher.refresh()
        assert watcher._subscribers == []
        watcher.close()

    def test_a_detection_bug_never_raises(self, caplog: pytest.LogCaptureFixture) -> None:
        """If detection itself fails, the affinity count is used and the error logged once."""

        def broken() -> ContainerLimits:
            raise RuntimeError("boom")

        watcher = _limits._Watcher(broken, interval=3600)
        assert watcher.get().cpus == _limits._affinity_cpus()
        watcher.refresh()
        errors = [r for r in caplog.records if r.name == "loopsafe.limits"]
        assert len(errors) == 1
        watcher.close()

    def test_first_read_then_only_the_thread_reads(self, tmp_path: Path) -> None:
        """After the first call, `get` returns the cache without reading a file."""
        root = v2_machine(tmp_path, {f"{LEAF_V2}/cpu.max": "200000 100000"})
        reads: list[float] = []

        def counting() -> ContainerLimits:
            reads.append(time.monotonic())
            return run(root)

        watcher = _limits._Watcher(counting, interval=3600)
        for _ in range(100):
            watcher.get()
        assert len(reads) == 1
        watcher.close()


def _writable_cpu_cgroup() -> Path | None:
    """This process's cgroup v1 ``cpu`` directory, if it is real and writable (root on Linux)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        proc = Path("/proc/self/cgroup").read_text()
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return None
    v1_paths, _ = _cgroup._parse_proc_cgroup(proc)
    mounts = [m for m in _cgroup._parse_mountinfo(mountinfo) if "cpu" in m.controllers]
    if "cpu" not in v1_paths or not mounts:
        return None  # cgroup v2 would need the cpu controller delegated: not tried here
    levels = _cgroup._levels(Path("/"), mounts[0], v1_paths["cpu"])
    if not levels or not os.access(levels[0].directory, os.W_OK):
        return None
    return levels[0].directory


CHILD = """
import json, loopsafe
from loopsafe import _limits
limits = _limits.container_limits()
print(json.dumps({"usable": loopsafe.usable_cpus(), "pool": loopsafe.HashPool().max_workers,
                  "affinity": limits.affinity, "summary": limits.describe()}))
"""


@pytest.mark.skipif(
    _writable_cpu_cgroup() is None, reason="needs root and a writable cgroup v1 cpu directory"
)
class TestRealCgroup:
    """A real child process in a real cgroup v1 with a real CPU quota (created, then removed)."""

    def run_in(self, cgroup: Path) -> dict[str, object]:
        """Run `CHILD` with its process moved into ``cgroup`` first; return what it printed."""
        script = 'echo $$ > "$1/cgroup.procs" && exec "$2" -c "$3"'
        done = subprocess.run(
            ["/bin/sh", "-c", script, "sh", str(cgroup), sys.executable, CHILD],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def test_quota_on_the_leaf(self) -> None:
        """One CPU of quota on the child's own cgroup gives a pool of 1 worker."""
        base = _writable_cpu_cgroup()
        assert base is not None
        leaf = base / f"loopsafe-test-{os.getpid()}"
        leaf.mkdir()
        try:
            (leaf / "cpu.cfs_quota_us").write_text("100000")
            (leaf / "cpu.cfs_period_us").write_text("100000")
            seen = self.run_in(leaf)
        finally:
            leaf.rmdir()  # the child has exited, so the cgroup is empty
        assert seen["usable"] == 1
        assert seen["pool"] == 1
        assert "cpu.cfs_quota_us 100000 / cpu.cfs_period_us 100000 -> 1 worker" in str(
            seen["summary"]
        )

    def test_quota_on_an_ancestor_only(self) -> None:
        """A quota on the parent of an unlimited cgroup is honoured (golang/go#81180)."""
        base = _writable_cpu_cgroup()
        assert base is not None
        parent = base / f"loopsafe-test-{os.getpid()}"
        leaf = parent / "leaf"
        parent.mkdir()
        try:
            leaf.mkdir()
            try:
                (parent / "cpu.cfs_quota_us").write_text("100000")
                (parent / "cpu.cfs_period_us").write_text("100000")
                seen = self.run_in(leaf)
            finally:
                leaf.rmdir()
        finally:
            parent.rmdir()
        assert seen["usable"] == 1
        assert seen["pool"] == 1


@pytest.fixture
def synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the process-wide limits come from a synthetic v2 tree re-read every 20 ms.

    It starts at 4 CPUs (``cpu.max 400000 100000``) and 1 GiB (``memory.max``).
    """
    root = v2_machine(
        tmp_path, {f"{LEAF_V2}/cpu.max": "400000 100000", f"{LEAF_V2}/memory.max": str(GIB)}
    )
    watcher = _limits._Watcher(lambda: run(root), interval=0.02)
    monkeypatch.setattr(_limits, "_watcher", watcher)
    yield root
    watcher.close()


def set_cpu_max(root: Path, text: str) -> None:
    """Write the synthetic leaf's ``cpu.max`` (what a Kubernetes in-place resize does)."""
    (root / "sys/fs/cgroup" / LEAF_V2.lstrip("/") / "cpu.max").write_text(text + "\n")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition the watcher thread makes true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class TestConsumers:
    """The pool, the public helpers and Prometheus use the detected limits."""

    @pytest.mark.usefixtures("synthetic")
    def test_public_helpers(self) -> None:
        """``usable_cpus`` and ``hashing_memory_budget`` answer from the limits."""
        assert loopsafe.usable_cpus() == 4
        assert _limits.hashing_memory_budget() == 512 * MIB
        assert loopsafe.container_limits().source == "cgroup_v2"

    def test_default_pool_follows_a_resize(self, synthetic: Path) -> None:
        """A pool with the default worker count follows the limit down and up again."""
        pool = loopsafe.HashPool(name="follows")
        try:
            assert pool.max_workers == 4
            set_cpu_max(synthetic, "100000 100000")
            wait_for(lambda: pool.max_workers == 1)
            set_cpu_max(synthetic, "300000 100000")
            wait_for(lambda: pool.max_workers == 3)
        finally:
            pool.close()

    def test_explicit_workers_win(self, synthetic: Path) -> None:
        """An explicit ``max_workers`` is kept through a resize; setting None follows again."""
        pool = loopsafe.HashPool(3, name="explicit")
        follows = loopsafe.HashPool(name="default-sized")
        try:
            set_cpu_max(synthetic, "100000 100000")
            wait_for(lambda: follows.max_workers == 1)
            assert pool.max_workers == 3
            follows.max_workers = 2
            set_cpu_max(synthetic, "500000 100000")
            time.sleep(0.2)  # ten re-reads
            assert follows.max_workers == 2
            follows.max_workers = None
            assert follows.max_workers == 5
        finally:
            pool.close()
            follows.close()

    def test_smaller_limit_applies_to_calls_not_yet_started(self, synthetic: Path) -> None:
        """Shrinking the limit lets running calls finish; queued ones then run one at a time."""
        pool = loopsafe.HashPool(name="shrinks", max_queue_wait=None)
        release = threading.Event()
        lock = threading.Lock()
        running = [0]
        peak_after: list[int] = []

        def enter() -> int:
            with lock:
                running[0] += 1
                return running[0]

        def leave() -> None:
            with lock:
                running[0] -= 1

        def first_call() -> None:
            enter()
            release.wait(30)
            leave()

        def later_call() -> None:
            peak_after.append(enter())
            time.sleep(0.02)
            leave()

        async def main() -> None:
            first = [asyncio.ensure_future(pool.run(first_call)) for _ in range(4)]
            while pool.statistics().running < 4:
                await asyncio.sleep(0.01)
            later = [asyncio.ensure_future(pool.run(later_call)) for _ in range(4)]
            await asyncio.sleep(0.01)
            set_cpu_max(synthetic, "100000 100000")
            while pool.max_workers != 1:
                await asyncio.sleep(0.01)
            release.set()
            await asyncio.gather(*first, *later)

        try:
            asyncio.run(main())
        finally:
            pool.close()
        assert peak_after == [1, 1, 1, 1]

    @pytest.mark.usefixtures("synthetic")
    def test_prometheus_gauges(self) -> None:
        """The gauges carry the detected limits, labelled by source only (never a path)."""
        from prometheus_client import CollectorRegistry, generate_latest

        from loopsafe.prometheus import register

        registry = CollectorRegistry()
        register(registry=registry)
        text = generate_latest(registry).decode()
        assert 'loopsafe_usable_cpus{source="cgroup_v2"} 4.0' in text
        assert 'loopsafe_cpu_limit_cpus{source="cgroup_v2"} 4.0' in text
        assert 'loopsafe_memory_limit_bytes{source="cgroup_v2"} 1.073741824e+09' in text
        assert "kubepods" not in text

    def test_prometheus_without_limits(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without limits only ``loopsafe_usable_cpus`` has a sample, with source="none"."""
        from prometheus_client import CollectorRegistry, generate_latest

        from loopsafe.prometheus import register

        watcher = _limits._Watcher(lambda: ContainerLimits(cpus=2, affinity=2), interval=3600)
        monkeypatch.setattr(_limits, "_watcher", watcher)
        registry = CollectorRegistry()
        register(registry=registry)
        text = generate_latest(registry).decode()
        assert 'loopsafe_usable_cpus{source="none"} 2.0' in text
        assert "loopsafe_cpu_limit_cpus{" not in text
        assert "loopsafe_memory_limit_bytes{" not in text
        watcher.close()

    @pytest.mark.usefixtures("synthetic")
    def test_bench_machine_section(self) -> None:
        """Every JSON document's ``machine.container`` says what was detected and where."""
        from loopsafe.cli._measure import machine_info

        machine = machine_info()
        assert machine["usable_cpus"] == 4
        container = machine["container"]
        assert isinstance(container, dict)
        assert container["source"] == "cgroup_v2"
        assert container["summary"] == (
            f"cgroup v2 {LEAF_V2}: cpu.max 400000 100000 -> 4 workers; "
            f"cgroup v2 {LEAF_V2}: memory.max 1 GiB -> 512 MiB for hashing"
        )


def test_forked_child_keeps_watching() -> None:
    """After os.fork (gunicorn --preload), a child with a following pool runs its own watcher."""
    script = """
import os, sys, threading, loopsafe
pool = loopsafe.HashPool()
pid = os.fork()
if pid == 0:
    alive = any(t.name == "loopsafe-limits-watcher" for t in threading.enumerate())
    os._exit(0 if alive and pool.max_workers == loopsafe.usable_cpus() else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    if not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        pytest.skip("needs os.fork on Linux")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "0", done.stderr


RESIZE_CHILD = """
import sys, time, loopsafe
pool = loopsafe.HashPool()
print(pool.max_workers, flush=True)
sys.stdin.readline()  # the parent lowers the quota, then says so
deadline = time.monotonic() + 30
while pool.max_workers == 2 and time.monotonic() < deadline:
    time.sleep(0.1)
print(pool.max_workers, loopsafe.container_limits().describe(), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(
    _writable_cpu_cgroup() is None or _limits._affinity_cpus() < 2,
    reason="needs root, a writable cgroup v1 cpu directory and 2 CPUs",
)
def test_real_resize_reaches_a_running_pool() -> None:
    """A real quota lowered from 2 CPUs to 1 under a running child shrinks its default pool."""
    base = _writable_cpu_cgroup()
    assert base is not None
    leaf = base / f"loopsafe-resize-{os.getpid()}"
    leaf.mkdir()
    try:
        (leaf / "cpu.cfs_period_us").write_text("100000")
        (leaf / "cpu.cfs_quota_us").write_text("200000")
        script = 'echo $$ > "$1/cgroup.procs" && exec "$2" -c "$3"'
        with subprocess.Popen(
            ["/bin/sh", "-c", script, "sh", str(leaf), sys.executable, RESIZE_CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        ) as child:
            assert child.stdin is not None
            assert child.stdout is not None
            before = child.stdout.readline().strip()
            started = time.monotonic()
            (leaf / "cpu.cfs_quota_us").write_text("100000")
            child.stdin.write("go\n")
            child.stdin.flush()
            after = child.stdout.readline().strip()
            took = time.monotonic() - started
            child.wait(timeout=60)
    finally:
        leaf.rmdir()
    assert before == "2"
    assert after.startswith("1 cgroup v1 /"), after
    report(f"real resize 2 -> 1 CPU reached the pool in {took:.2f} s")
    assert took < _limits.REFRESH_INTERVAL + 5
