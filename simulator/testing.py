"""Running the simulator from tests and tools: start it in a thread, reset it between tests, drive its sign-in
pages without a browser, and build MSAL clients that trust its CA.

The sign-in driver speaks to the same HTML a person (or Playwright) uses, so tests of the app's OAuth
callback exercise the real authorize endpoint rather than a shortcut.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from simulator.control import Control
from simulator.core import Simulator
from simulator.server import Handler, SimulatorApp, make_https_server

if TYPE_CHECKING:
    import msal
    import requests
    from werkzeug.serving import BaseWSGIServer

    from devstack.tls import LocalTls


@dataclass
class RunningSimulator:
    url: str
    sim: Simulator
    ca_path: Path
    _server: BaseWSGIServer = field(repr=False)
    _app: SimulatorApp = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def control(self) -> Control:
        return Control(self.sim)

    def authority(self, tenant: str = "common") -> str:
        return f"{self.url}/{tenant}"

    def __post_init__(self) -> None:
        def follow(sim: Simulator) -> None:
            self.sim = sim

        self._app.on_install.append(follow)  # also after POST /_control/reset

    def reset(self, sim: Simulator | None = None) -> Simulator:
        """Give the running server a fresh (or the given) Simulator: same URL and CA, no state."""
        self._app.install(sim or Simulator())
        return self.sim

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def start_simulator(
    tls: LocalTls,
    *,
    port: int = 0,
    sim: Simulator | None = None,
    host: str = "127.0.0.1",
    extra_handlers: dict[str, Handler] | None = None,
    notification_ca: Path | None = None,
) -> RunningSimulator:
    """Serve in a daemon thread. `extra_handlers` maps path prefixes to handlers, for tests that need a route
    the simulator does not have (e.g. one that raises DropConnection). Change notifications verify their
    receiver's certificate against `notification_ca` (default: the CA of `tls`, which signs the local stack's
    certificates), for this Simulator and every one installed after it that sets none."""
    sim = sim or Simulator()
    ca = notification_ca or tls.ca_path

    def trust(installed: Simulator) -> None:
        if installed.notification_ca is None:
            installed.notification_ca = ca

    trust(sim)
    app = SimulatorApp(sim, extra_handlers=extra_handlers)
    app.on_install.append(trust)
    server = make_https_server(app, tls, host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="simulator",
                              daemon=True)
    thread.start()
    return RunningSimulator(f"https://{host}:{server.port}", sim, tls.ca_path, server, app, thread)


# --- HTTP clients that trust the simulator ---------------------------------------------------------------------


def http_session(ca_path: Path) -> requests.Session:
    """`trust_env = False`: REQUESTS_CA_BUNDLE (set on these machines) would otherwise override `verify`."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_path)
    return session


def confidential_client(
    running: RunningSimulator, client_id: str, client_secret: str, tenant: str = "common", **kwargs: Any
) -> msal.ConfidentialClientApplication:
    import msal

    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=client_secret,
        authority=running.authority(tenant),
        instance_discovery=False,
        http_client=http_session(running.ca_path),
        **kwargs,
    )


# --- driving the sign-in pages -------------------------------------------------------------------------------


class SignInPageError(Exception):
    """The authorize endpoint showed an error page (nothing was sent to the redirect URI)."""

    def __init__(self, code: int | None, error: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.error = error
        self.text = text


@dataclass
class _Form:
    id: str
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    buttons: list[dict[str, str]] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.error: dict[str, str] | None = None
        self._in_error = False
        self._error_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(a.get("id", ""), a.get("action", "")))
        elif tag == "input" and a.get("type") == "hidden" and self.forms:
            self.forms[-1].hidden[a.get("name", "")] = a.get("value", "")
        elif tag == "button" and self.forms:
            self.forms[-1].buttons.append(a)
        elif tag == "div" and a.get("id") == "error":
            self.error = a
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self._error_text.append(data)

    @property
    def error_text(self) -> str:
        return "".join(self._error_text)


def _params_of(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    return dict(parse_qsl(parts.fragment or parts.query, keep_blank_values=True))


def sign_in(
    auth_uri: str,
    account: str,
    *,
    ca_path: Path,
    consent: bool = True,
    session: requests.Session | None = None,
    type_address: bool = False,
) -> dict[str, str]:
    """Do what a person does in the browser: open `auth_uri`, pick `account`, accept (or deny) consent.

    Returns the parameters the browser would carry to the redirect URI (`code`, `state`, ... or `error`,
    `error_description`, ...), which is what MSAL's `acquire_token_by_auth_code_flow` takes. The redirect
    itself is not followed. Raises SignInPageError when an error page is shown instead. An account the page
    does not list raises LookupError, unless `type_address`: then it is typed under "Use another account".
    """
    typed = False
    http = session or http_session(ca_path)
    response = http.get(auth_uri, allow_redirects=False)
    for _ in range(5):
        if response.is_redirect:
            return _params_of(response.headers["Location"])
        page = _PageParser()
        page.feed(response.text)
        if page.error is not None:
            code = page.error.get("data-error-code") or ""
            raise SignInPageError(int(code) if code else None, page.error.get("data-error", ""), page.error_text)
        forms = {f.id: f for f in page.forms}
        if "form_post" in forms:
            return dict(forms["form_post"].hidden)
        if "pick-account" in forms:
            form = forms["pick-account"]
            offered = [b.get("data-account", "") for b in form.buttons]
            if account.lower() not in (o.lower() for o in offered):
                if not type_address or typed or "use-another" not in forms:
                    raise LookupError(f"{account!r} is not offered on the sign-in page; offered: {offered}")
                form, typed = forms["use-another"], True
            data = {**form.hidden, "account": account}
        elif "consent" in forms:
            form = forms["consent"]
            data = {**form.hidden, "action": "accept" if consent else "deny"}
        else:
            raise AssertionError(f"unexpected sign-in page (HTTP {response.status_code}): {response.text[:500]}")
        response = http.post(urljoin(response.url, form.action), data=data, allow_redirects=False)
    raise AssertionError("the sign-in pages did not end in a redirect")
