"""`make bench-monitor` runs monitoring cycles over in-memory ports and prints its numbers.

Run as its command (``python -m scripts.bench_monitor``): tests import no script code.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from config.settings import REPO_ROOT


@pytest.mark.slow
def test_tiny_benchmark_prints_and_writes_every_key(tmp_path):
    output = tmp_path / "benchmark_monitor.json"
    argv = [
        "--records",
        "40",
        "60",
        "--cycles",
        "2",
        "--modes",
        "verdicts",
        "--output",
        str(output),
    ]
    command = [sys.executable, "-m", "scripts.bench_monitor", *argv]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    report = json.loads(printed[printed.index("{") :])
    assert report == json.loads(output.read_text())
    assert set(report) >= {"modes", "cycles_per_size", "peak_rss_mb", "environment"}
    assert "verdicts/cycle" in printed and "us per record" in printed and "peak RSS" in printed
    # Only the mode asked for: the drift mode adds Evidently, tens of seconds on this machine.
    (mode,) = report["modes"].values()
    assert [run["records"] for run in mode["runs"]] == [40, 60]
    for run in mode["runs"]:
        first, second = run["cycles"]
        for cycle in (first, second):
            # Every new verdict is counted once, and the scored ones are labelled.
            assert cycle["verdicts"] == run["records"]
            assert 0 < cycle["labelled"] <= run["records"]
            assert cycle["drift_rows"] == 0 and cycle["published_datapoints"] > 0
            # This process's CPU time and its peak RSS during the cycle (Linux: VmHWM reset).
            assert cycle["cpu_seconds"] > 0 and cycle["peak_rss_mb"] > 0
        # The second cycle carries the first one's sequence numbers in the state.
        assert second["state_bytes"] > first["state_bytes"]
        # Both numbers are rounded in the report: equal within the rounding, not exactly.
        expected = run["records"] / run["median_seconds"]
        assert run["records_per_s"] == pytest.approx(expected, rel=0.01)
        assert run["peak_rss_mb"] == max(c["peak_rss_mb"] for c in run["cycles"])
        assert run["median_cpu_seconds"] > 0
    assert set(mode["cost_model"]) == {
        "per_record_us",
        "fixed_seconds",
        "per_record_cpu_us",
        "fixed_cpu_seconds",
    }


@pytest.mark.slow
def test_archive_benchmark_prints_and_writes_its_figures(tmp_path):
    """`make bench-monitor`: one cycle over a DuckDB archive per size, every verdict counted
    and every label joined (the script checks both), figures against the targets."""
    output = tmp_path / "benchmark_archive.json"
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench_archive", "--records", "300", "--formats"]
        + ["--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "us/verdict" in done.stdout and "peak RSS" in done.stdout
    report = json.loads(output.read_text())
    (run,) = report["runs"]
    assert run["verdicts"] == 300 and run["labelled"] == run["labels"] > 0
    assert run["cpu_us_per_verdict"] > 0 and run["peak_rss_mb"] > 0
    assert report["formats"]["parquet_zstd_bytes"] > 0
    assert set(report["met"]) == {"cpu", "rss"}
