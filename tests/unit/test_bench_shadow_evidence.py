"""The shadow-evidence benchmark runs as its command and prints its numbers as JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from config.settings import REPO_ROOT


def test_tiny_benchmark_prints_the_counts_it_measured():
    command = [sys.executable, "-m", "scripts.bench_shadow_evidence", "--records", "2000"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert run["records"] == run["counted_records"] == 2000
    assert 0 < run["labelled"] < 2000 and run["cpu_s"] > 0


def test_output_writes_the_printed_numbers(tmp_path):
    output = tmp_path / "reports" / "benchmark_shadow_evidence.json"
    command = [sys.executable, "-m", "scripts.bench_shadow_evidence", "--records", "1000"]
    done = subprocess.run(
        [*command, "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(output.read_text())
    assert done.stdout.endswith(f"wrote {output}\n")
    assert json.loads(done.stdout[: done.stdout.rindex("wrote")]) == written
    assert written["runs"][0]["counted_records"] == 1000 and len(written["load_average"]) == 2
