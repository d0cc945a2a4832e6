"""`python -m devstack.serve_app --port N`: serve only the function app, with settings from the environment, until
SIGTERM. For running the app against services that are already up (another machine's Azurite, a real vault),
and for tests that kill and restart the app process."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType

from devstack.stack import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.serve_app", description=__doc__)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--https-port", type=int, default=None,
                        help="also serve the app over HTTPS on this port (Graph's change notifications)")
    parser.add_argument("--tls-dir", default=None, help="with --https-port: the local CA's directory "
                        "(server.pem, server.key; devstack/tls.py)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)

    import function_app
    from devstack.host import LocalFunctionsHost

    function_key, master_key = os.environ.get("LOCAL_FUNCTION_KEY"), os.environ.get("LOCAL_MASTER_KEY")
    if not function_key or not master_key:
        print("set LOCAL_FUNCTION_KEY and LOCAL_MASTER_KEY", file=sys.stderr)
        return 2
    host = LocalFunctionsHost(function_app.app, host_json=json.loads((REPO / "host.json").read_text()),
                              env=dict(os.environ), function_key=function_key, master_key=master_key,
                              storage_connection_string=os.environ.get("AzureWebJobsStorage"))  # noqa: SIM112 - Azure's name
    context = None
    if args.https_port is not None:
        if not args.tls_dir:
            print("--https-port needs --tls-dir", file=sys.stderr)
            return 2
        from pathlib import Path

        from devstack.tls import LocalTls

        directory = Path(args.tls_dir)
        tls = LocalTls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        context = tls.server_context()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)  # the terminal closed: stop what was started, as on Ctrl-C
    host.start(port=args.port, https_port=args.https_port, ssl_context=context)
    print(f"serving the function app on http://127.0.0.1:{args.port}", flush=True)
    while not stop.wait(0.5):
        pass
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
