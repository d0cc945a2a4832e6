"""One Functions instance for `bench/pull`'s measured cycles, in a process of its own
(`python -m bench.pull_worker --rooms N`, started by the benchmark with the stack's settings in its environment).

It builds the app's services as a newly started instance does, then runs one pull cycle the way the Functions host
would on that instance: the timer's fan-out (`PullService.enqueue_all`) and `--workers` queue workers calling the
registered `room_pull` function until every room is pulled. It prints one JSON object: the instance's resident
memory once idle (imports and services ready), its high-water mark at the end (the peak the cycle drove it to,
from /proc), wall and CPU time, message counts, and its table and queue requests. Measured in a fresh process,
the peak holds only what the app keeps, not the benchmark's own bookkeeping, and costs no tracing overhead.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

from bench.stack import QueueWorker, host_queues, quiet_logs


def memory() -> tuple[int, int]:
    """(resident now, high-water mark) in bytes."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pull_worker", description=__doc__)
    parser.add_argument("--rooms", type=int, required=True, help="rooms the timer is expected to queue")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    quiet_logs(30)  # stdout carries the JSON result; warnings go to stderr

    from bench.pull_bench import LEASE, PULL_QUEUE, StorageMeter, room_pull_function
    from shared import runtime

    services = runtime.services()
    meter = StorageMeter()
    function = room_pull_function()
    lock = threading.Lock()
    function_cpu = [0.0]

    def handler(body: dict) -> None:
        """The function as the host runs it, its thread's CPU added up (the rest of the process's CPU is the queue
        worker's receives and deletes, which the Functions host does outside the Python worker, and the sweep)."""
        started = time.thread_time()
        try:
            function(body)
        finally:
            with lock:
                function_cpu[0] += time.thread_time() - started

    gc.collect()
    idle, _ = memory()
    with QueueWorker(os.environ["AzureWebJobsStorage"], PULL_QUEUE, handler, threads=args.workers,  # noqa: SIM112
                     keep_deliveries=False, refill_at=host_queues().new_batch_threshold, lease_seconds=LEASE) as worker:
        meter.take()
        cpu0, t0 = time.process_time(), time.perf_counter()
        queued = services.pull.enqueue_all()
        enqueue = time.perf_counter() - t0
        enqueue_cpu = time.process_time() - cpu0
        deadline = t0 + args.timeout
        while worker.handled - worker.failed < queued:
            if time.perf_counter() > deadline or worker.failed > max(10, queued // 10):
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        handled, failed = worker.handled, worker.failed
        storage_requests, storage_bytes, storage_ops = meter.take()
    _, peak = memory()
    json.dump({"queued": queued, "expected": args.rooms, "handled": handled, "failed": failed, "wall": wall,
               "enqueue": enqueue, "cpu": cpu, "idle_rss": idle, "peak_rss": peak,
               "storage_requests": storage_requests, "storage_bytes": storage_bytes,
               "storage_ops": storage_ops,
               "function_cpu": function_cpu[0], "enqueue_cpu": enqueue_cpu}, sys.stdout)
    sys.stdout.write("\n")
    return 0 if handled - failed >= queued == args.rooms else 1


if __name__ == "__main__":
    sys.exit(main())
