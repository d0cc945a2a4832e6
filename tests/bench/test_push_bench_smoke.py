"""The push benchmark at a tiny size on every CI run (see test_bench_smoke.py): every phase runs and ends with its
`name: value` lines; what holds at any size is asserted (nothing missed, 10% lost notifications caught by the sweep,
push cheaper than polling)."""

from tests.bench.test_bench_smoke import run


def test_push_benchmark_runs_every_phase_and_misses_nothing():
    figures = run("bench.push_bench", "--rooms", "4", "--bookings-per-room", "2", "--rate", "4", "--loss", "0.5",
                  "--wait", "15")
    assert set(figures) >= {"push_latency_p95_s", "graph_requests_per_room_hour", "missed"}, figures
    assert figures["missed"] == "0"
    assert float(figures["push_latency_p95_s"]) < 10  # 1 s delivery + 1 s coalescing + the pull, on a busy CI box
    assert float(figures["graph_requests_per_room_hour"]) < float(figures["graph_requests_per_room_hour_polling"])
