"""`python -m simulator`: serve the identity platform and Graph simulator until SIGINT or SIGTERM.

Reuses the CA in --tls-dir when one is there, so the other local services that trust it keep working.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack.tls import LocalTls, create_local_tls
from simulator.core import Simulator
from simulator.seed import seed_demo
from simulator.testing import start_simulator


def load_or_create_tls(directory: Path) -> LocalTls:
    existing = LocalTls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    if all(p.exists() for p in (existing.ca_path, existing.cert_path, existing.key_path)):
        return existing
    return create_local_tls(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--tls-dir", type=Path, default=Path(".devstack/tls"))
    parser.add_argument("--seed-demo", action="store_true", help="create the demo tenant, accounts and app")
    parser.add_argument("--redirect-uri", help="the app's OAuth callback URL (required with --seed-demo)")
    parser.add_argument("--seed-out", type=Path,
                        help="with --seed-demo: write the demo directory (client secret included) to this file, "
                             "readable by the owner only, instead of printing it")
    parser.add_argument("--notification-ca", type=Path,
                        help="CA bundle to verify change notification receivers against (default: the CA in "
                             "--tls-dir)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.seed_demo and not args.redirect_uri:
        parser.error("--seed-demo needs --redirect-uri")

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Latency is injected as sleeps: hand the GIL over sooner (default 5 ms) so a request thread whose latency
    # has passed answers on time while other requests are being processed.
    sys.setswitchinterval(0.0005)
    tls = load_or_create_tls(args.tls_dir)
    sim = Simulator()
    seeded = seed_demo(sim, args.redirect_uri) if args.seed_demo else None
    running = start_simulator(tls, port=args.port, sim=sim, host=args.host, notification_ca=args.notification_ca)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"Simulator listening on {running.url}", flush=True)
    print(f"CA certificate: {running.ca_path.resolve()}", flush=True)
    print(f"Authority (common): {running.authority('common')}", flush=True)
    if seeded is not None and args.seed_out:
        args.seed_out.touch(mode=0o600)
        args.seed_out.write_text(json.dumps(seeded, indent=2))
        print(f"Demo directory written to {args.seed_out}", flush=True)
    elif seeded is not None:
        print("Demo directory:", json.dumps(seeded, indent=2), sep="\n", flush=True)
    while not stop.wait(0.5):
        pass
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
