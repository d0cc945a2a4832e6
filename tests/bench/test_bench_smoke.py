"""The benchmarks, run at a tiny size on every CI run so they cannot rot: each starts its own stack, runs every
phase and ends with its `name: value` lines. Their figures at full size are in the README; here only what holds
at any size is asserted (no echo, no missed change, nothing duplicated or lost)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(module: str, *args: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pairs = [line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line]
    return {name: value.strip() for name, value in pairs if name.isidentifier()}


def test_pull_benchmark_runs_every_phase_and_misses_nothing():
    figures = run("bench.pull_bench", "--rooms", "6", "--events", "40", "--large-rooms", "12", "--signed-in", "2",
                  "--check")
    assert set(figures) >= {"requests_per_room", "ratio_to_bound", "memory_ratio_5000_vs_500", "echoes", "missed"}
    assert float(figures["requests_per_room"]) <= 1.05
    assert (figures["echoes"], figures["missed"]) == ("0", "0")


def test_export_benchmark_runs_every_phase_with_nothing_duplicated_or_lost():
    figures = run("bench.export_bench", "--occurrences", "60", "--mailboxes", "3", "--latency-ms", "5")
    assert set(figures) >= {"ratio_to_bound", "speedup_vs_sequential", "duplicates", "missing"}, figures
    assert (figures["duplicates"], figures["missing"], figures["violations"]) == ("0", "0", "0")
