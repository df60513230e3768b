"""``loopsafe storm --flood --quick``: the flood comparison runs end to end and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys

CELLS = 5  # the legit-only baseline, then FIFO and keyed for each of two scenarios


def test_flood_quick_smoke(tmp_path):
    """A quick flood run prints the table and writes one JSON cell per scenario and variant."""
    out = tmp_path / "flood.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopsafe",
            "storm",
            "--flood",
            "--quick",
            "--no-progress",
            "--duration",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "legit ok" in done.stdout
    document = json.loads(out.read_text())
    assert document["command"].startswith("loopsafe storm --flood --quick")
    assert [(c["scenario"], c["variant"]) for c in document["cells"]] == [
        ("none", "keyed"),
        ("single", "fifo"),
        ("single", "keyed"),
        ("rotating", "keyed"),
        ("rotating", "fifo"),
    ]
    assert len(document["cells"]) == CELLS
    for cell in document["cells"]:
        assert cell["legit"]["errors"] == 0
        assert "10.0.0." not in json.dumps(cell["pool"])  # counts only, never keys


def test_flood_devices_scenario_smoke(tmp_path):
    """``--scenario devices`` runs keyed and devices on one schedule, with returning users."""
    out = tmp_path / "flood.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "loopsafe", "storm", "--flood", "--quick", "--no-progress"),
            *("--duration", "1", "--scenario", "devices", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "back ok" in done.stdout
    document = json.loads(out.read_text())
    assert document["returning_share"] == 0.5
    cells = document["cells"]
    assert [(c["scenario"], c["variant"]) for c in cells] == [
        ("none", "keyed"),
        ("devices", "keyed"),
        ("devices", "devices"),
    ]
    for cell in cells[1:]:
        assert cell["returning"]["offered"] > 0
        assert cell["returning"]["errors"] == 0
        assert "loopsafe-device" not in json.dumps(cell)  # no device key leaves the run
        assert "v1." not in json.dumps(cell)  # nor a token
