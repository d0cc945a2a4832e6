"""`python -m devstack`: run the function app with everything it needs, on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from devstack.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--port", type=int, default=7071, help="the function app's port (default 7071)")
    parser.add_argument("--microsoft", choices=("simulator", "cloud"), default="simulator",
                        help="talk to the local simulator (default) or to the Microsoft endpoints set in "
                             "local.settings.json (IDENTITY_AUTHORITY_HOST, GRAPH_BASE_URL)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # The Azure SDKs log every HTTP request at INFO; keep the console for the app's own lines.
    logging.getLogger("azure").setLevel(logging.WARNING)

    stack = LocalStack(with_simulator=args.microsoft == "simulator")
    stack.ports["app"] = args.port
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)  # the terminal closed: stop what was started, as on Ctrl-C
    try:
        stack.start()
    except Exception as exc:  # noqa: BLE001 - any start failure ends the command with its reason
        print(f"could not start the local stack: {exc}", file=sys.stderr)
        return 1
    print(stack.banner(), flush=True)
    while not stop.wait(0.5):
        pass
    print("stopping…", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
