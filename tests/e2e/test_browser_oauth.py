"""The whole authorization dance in a real headless Chromium (Debian's, driven by Playwright): the host asks
for the URL, the browser follows it to Microsoft's (simulated) sign-in and consent pages, consents, is posted
back to the callback, and lands on the host's return URL with `connected`; or, signed in as someone else than
expected, with `wrong_account` naming both; or, with an account the app's type excludes, stays on Microsoft's
error page."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pytest
from werkzeug.wrappers import Request, Response

from devstack.ports import free_port
from devstack.serving import serve_in_thread, shutdown
from simulator.directory import AUDIENCE_MULTI_ORG
from tests.helpers import configure, make_directory, new_system, query_of

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def host_app():
    """A stand-in for the booking system's admin page the browser returns to."""

    @Request.application
    def page(request: Request) -> Response:
        outcome = html.escape(request.args.get("outcome", ""))
        account = html.escape(request.args.get("account", ""))
        return Response(f"<html><body><h1 id='outcome'>{outcome}</h1><p id='account'>{account}</p></body></html>",
                        mimetype="text/html")

    server = serve_in_thread(page, free_port(), name="host-app")
    yield f"http://127.0.0.1:{server.server_port}"
    shutdown(server)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: scripts/test installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.mark.browser
def test_connect_a_user_in_a_real_browser(api, app, simulator, host_app, browser, tmp_path):
    directory = make_directory(simulator, app.redirect_uri)
    system = new_system()
    configure(api, system, directory, allowed_return_origins=[host_app])
    started = api.post(f"/api/systems/{system}/connections/user/u7/authorize",
                       json={"return_url": f"{host_app}/settings/outlook"})
    assert started.status_code == 201, started.text

    # The simulator's certificate is issued by the test run's own CA, which Chromium does not know.
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(started.json()["authorize_url"])
    page.click(f"button[value='{directory.staff}']")  # Microsoft's account picker
    page.click("#accept")  # the consent page
    page.wait_for_url(f"{host_app}/settings/outlook?*", timeout=15_000)  # posted back, then sent home
    page.screenshot(path=str(tmp_path / "landed.png"))
    landed = query_of(page.url)
    assert landed["outcome"] == "connected", page.url
    assert page.inner_text("#outcome") == "connected"
    context.close()

    calendars = api.get(f"/api/systems/{system}/connections/user/u7/calendars")
    assert calendars.status_code == 200, calendars.text
    assert any(c["is_default"] for c in calendars.json()["calendars"])


@pytest.mark.browser
def test_signing_in_as_someone_else_lands_with_wrong_account(api, app, simulator, host_app, browser):
    directory = make_directory(simulator, app.redirect_uri)
    system = new_system()
    configure(api, system, directory, allowed_return_origins=[host_app])
    started = api.post(f"/api/systems/{system}/connections/user/u8/authorize",
                       json={"return_url": f"{host_app}/settings/outlook", "expected_account": directory.staff})
    assert started.status_code == 201, started.text

    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(started.json()["authorize_url"])
    assert page.get_attribute(f"button[value='{directory.staff}']", "class") == "hinted"  # suggested first
    page.click(f"button[value='{directory.other_staff}']")
    page.click("#accept")
    page.wait_for_url(f"{host_app}/settings/outlook?*", timeout=15_000)
    landed = query_of(page.url)
    context.close()

    assert landed["outcome"] == "wrong_account"
    assert (landed["account"], landed["expected_account"]) == (directory.other_staff, directory.staff)
    assert api.get(f"/api/systems/{system}/connections/user/u8").status_code == 404


@pytest.mark.browser
def test_a_personal_account_on_a_work_only_app_stays_on_microsofts_error_page(api, app, simulator, host_app,
                                                                               browser):
    directory = make_directory(simulator, app.redirect_uri, audience=AUDIENCE_MULTI_ORG)
    system = new_system()
    configure(api, system, directory, account_type="organizations", allowed_return_origins=[host_app])
    started = api.post(f"/api/systems/{system}/connections/user/u9/authorize",
                       json={"return_url": f"{host_app}/settings/outlook"})

    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(started.json()["authorize_url"])
    assert page.locator(f"button[value='{directory.personal}']").count() == 0  # /organizations does not list it
    page.fill("#other-account", directory.personal)  # "Use another account"
    page.click("#next")
    page.wait_for_selector("#error", timeout=15_000)
    error = page.get_attribute("#error", "data-error-code")
    url = page.url
    context.close()

    assert error == "500200"
    assert not url.startswith(host_app)  # Microsoft never sends the browser back: nothing to report
    assert api.get(f"/api/systems/{system}/connections/user/u9").status_code == 404
