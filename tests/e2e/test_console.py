"""The admin console in a real headless Chromium (Debian's, driven by Playwright), against the app, Azurite, the
Key Vault endpoint and the Microsoft simulator: an admin pastes the keys, saves the integration (a wrong secret
first, shown with Microsoft's code), connects a user and a room through Microsoft's (simulated) sign-in, picks
calendars and the room mailbox, runs a bulk export and watches its bar reach 100%, sees a booking made in Outlook
in the room's feed after a pull, and sees the alert a revoked consent raises. Every page is saved as a
screenshot under `.artifacts/console/` (kept by CI, ignored by git)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from devstack.ports import free_port
from devstack.stack import REPO
from tests.conftest import FUNCTION_KEY, MASTER_KEY
from tests.e2e.processes import AppProcess, app_env, isolated_storage
from tests.e2e.test_browser_oauth import browser  # noqa: F401 - the module's Chromium fixture
from tests.helpers import make_directory, new_system, wait_for
from tests.integration.test_pull import outlook_event

ARTIFACTS = REPO / ".artifacts" / "console"
VIEWPORT = {"width": 1366, "height": 800}  # a laptop screen


# What an admin with a screen reader, a keyboard or low vision needs from every page: each form control has exactly
# one label, each button and link a name, and all visible text WCAG AA contrast against the background it is drawn
# on (4.5:1, or 3:1 for large text); disabled buttons are exempt, as WCAG exempts inactive controls.
AUDIT = """() => {
  const problems = [];
  const rgb = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(',').map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255 };
  };
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el) || el.closest('button[disabled]') || el.closest('.sr-only')) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const style = getComputedStyle(el);
    const [hi, lo] = [lum(rgb(style.color)), lum(background(el))].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
    }
  }
  for (const c of document.querySelectorAll('input, select, textarea')) {
    if (visible(c) && (!c.labels || c.labels.length !== 1)) {
      problems.push(`control ${c.name || c.id} has ${c.labels ? c.labels.length : 0} labels`);
    }
  }
  for (const b of document.querySelectorAll('button, a[href]')) {
    if (visible(b) && !b.textContent.trim() && !b.getAttribute('aria-label')) {
      problems.push(`${b.tagName} without a name`);
    }
  }
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  return problems;
}"""


@pytest.fixture(scope="module")
def shots() -> Callable[[Any, str], Path]:
    """Save the page as a screenshot, after checking it (AUDIT)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shoot(page: Any, name: str) -> Path:
        problems = page.evaluate(AUDIT)
        assert not problems, f"{name}: {problems}"
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot


def invoke(app: Any, function: str, payload: dict[str, Any]) -> None:
    """Run a queue function now with `payload` as its message (the host's admin API, master key)."""
    response = requests.post(f"{app.url}/admin/functions/{function}", json={"input": json.dumps(payload)},
                             headers={"x-functions-key": MASTER_KEY}, timeout=30)
    assert response.status_code == 202, response.text



def unfocusable(page: Any, presses: int) -> list[str]:
    """Tab through the page: every element that takes the focus must show it (an outline)."""
    missing = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        shown = page.evaluate("""() => { const e = document.activeElement, s = getComputedStyle(e);
            return [e.tagName + ' ' + (e.name || e.textContent.trim().slice(0, 30)),
                    s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2]; }""")
        if not shown[1] and not shown[0].startswith("BODY"):  # past the last one, the focus leaves the page
            missing.append(shown[0])
    return missing


def sign_in_with_microsoft(page: Any, account: str) -> None:
    page.click(f"button[value='{account}']")  # Microsoft's account picker
    page.click("#accept")  # the consent page


@pytest.mark.browser
def test_the_whole_admin_flow_in_the_console(api, app, simulator, browser, shots):  # noqa: F811
    started = time.monotonic()
    directory = make_directory(simulator, app.redirect_uri)
    # The administrators' steps for app mode: Place.Read.All for the room list, and the app's Exchange role limited
    # to the tenant's room mailboxes.
    control = simulator.control
    control.grant_app_permissions(directory.tenant_id, directory.client_id, ["Place.Read.All"])
    control.create_management_scope(directory.tenant_id, "Rooms", "RecipientTypeDetails -eq 'RoomMailbox'")
    control.assign_management_role(directory.tenant_id, directory.client_id, "Application Calendars.ReadWrite", "Rooms")
    system = new_system()
    system_key = api.system_key(system)
    assert system_key
    console = f"{app.url}/api/console"

    context = browser.new_context(ignore_https_errors=True, viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)

    # The keys: pasted in, kept in the tab's sessionStorage only.
    page.goto(console)
    page.get_by_label("System ID").fill(system)
    page.get_by_label("Function key").fill(FUNCTION_KEY)
    page.get_by_label("System key").fill(system_key)
    shots(page, "01-sign-in")
    page.get_by_role("button", name="Open").click()
    page.get_by_role("heading", name="Integration", exact=True).wait_for()
    stored = page.evaluate("() => [localStorage.length, sessionStorage.getItem('outlook-sync-console') || '']")
    assert stored[0] == 0 and FUNCTION_KEY in stored[1] and system_key in stored[1]
    redirect = page.get_by_label("Redirect URI", exact=True).input_value()
    assert redirect == app.redirect_uri

    # The integration: a wrong secret is refused with Microsoft's code; the right one is saved.
    page.get_by_label("Application (client) ID").fill(directory.client_id)
    page.get_by_label("Client secret value").fill("not-the-secret")
    page.get_by_label("Supported account type").select_option("common")
    page.get_by_label("Directory (tenant) ID").fill(directory.tenant_id)
    assert page.get_by_label("Allowed return origins (one per line)").input_value() == app.url
    page.get_by_role("button", name="Save settings").click()
    refusal = page.get_by_role("alert")
    refusal.wait_for()
    assert "App ID or Secret is incorrect" in refusal.inner_text() and "AADSTS7000215" in refusal.inner_text()
    assert page.evaluate("document.activeElement.name") == "client_secret"
    shots(page, "02-integration-refused")
    page.get_by_label("Client secret value").fill(directory.secret)
    page.get_by_label("Client secret expires on").fill("2028-06-30")
    page.get_by_label("App access to room mailboxes").check()
    page.get_by_label("Directory of the rooms (tenant ID or domain)").fill(directory.tenant_id)
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Settings saved").wait_for()
    saved = api.get(f"/api/systems/{system}/integration").json()
    assert saved["enabled"] is True and saved["client_secret"]["expires_on"].startswith("2028-06-30")
    assert saved["app_access"]["enabled"] is True and saved["app_access"]["tenant_id"] == directory.tenant_id
    shots(page, "03-integration")
    assert (missing := unfocusable(page, 25)) == [], missing  # the header, the copy button, every field of the form

    # A user: Connect runs Microsoft's sign-in and comes back here with the outcome.
    page.get_by_role("link", name="Connections", exact=True).click()
    page.get_by_label("ID in the booking system").fill("u1")
    page.get_by_label("Expected Microsoft account (optional)").fill(directory.staff)
    page.get_by_role("button", name="Authorize with Microsoft Account").click()
    sign_in_with_microsoft(page, directory.staff)
    page.get_by_role("heading", name="User u1").wait_for()
    assert "outcome=" not in page.url and page.url.endswith("#/connection/user/u1")
    assert f"Connected: user u1 as {directory.staff}" in page.inner_text("#announce")
    calendars = api.get(f"/api/systems/{system}/connections/user/u1/calendars").json()["calendars"]
    default = next(c for c in calendars if c["is_default"])
    page.get_by_label("Calendar to sync shifts with").select_option(default["id"])
    page.get_by_label("Calendar to check free/busy status").select_option(default["id"])
    page.get_by_role("button", name="Save calendars").click()
    page.get_by_role("heading", name="Bulk export").wait_for()
    connection = api.get(f"/api/systems/{system}/connections/user/u1").json()
    assert connection["sync_calendar_id"] == connection["freebusy_calendar_id"] == default["id"]

    # The bulk export and its bar, to 100%.
    page.get_by_label("Sample items").fill("30")
    page.get_by_role("button", name="Fill in sample items").click()
    page.get_by_role("button", name="Run the export").click()
    page.get_by_text("Export finished").wait_for(timeout=30_000)
    bar = page.locator("progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "30"
    assert page.locator(".figures").inner_text().startswith("100%: 30 of 30 done, 0 failed, 0 retrying")
    shots(page, "04-user-export")

    # A space on the room mailbox, two-way.
    page.get_by_role("link", name="Connections", exact=True).click()
    page.get_by_text("A space (room bookings, two-way)").click()
    page.get_by_label("ID in the booking system").fill("room-101")
    page.get_by_role("button", name="Authorize with Microsoft Account").click()
    sign_in_with_microsoft(page, directory.staff)
    page.get_by_role("heading", name="Space room-101").wait_for()
    page.get_by_label("Room mailbox").select_option(directory.room)  # the directory's rooms (Places API)
    page.get_by_label("Location ID").fill("main")
    page.get_by_label("Two-way sync: bring bookings made in Outlook back").check()
    page.get_by_role("button", name="Save the room settings").click()
    page.get_by_text("Room settings saved").wait_for()
    room_calendars = api.get(f"/api/systems/{system}/connections/space/room-101/calendars").json()
    assert room_calendars["sync_resource"] == directory.room
    room_default = next(c for c in room_calendars["calendars"] if c["is_default"])
    page.get_by_label("Calendar to sync bookings with").select_option(room_default["id"])
    page.get_by_role("button", name="Save calendars").click()
    page.get_by_role("heading", name="Bulk export").wait_for()
    page.get_by_label("Populate name and email from Outlook").check()
    page.get_by_role("button", name="Save the location settings").click()
    page.get_by_text("Location settings saved").wait_for()
    assert api.get(f"/api/systems/{system}/locations/main").json()["populate_creator"] is True
    page.get_by_label("Sample items").fill("10")
    page.get_by_role("button", name="Fill in sample items").click()
    page.get_by_role("button", name="Run the export").click()
    page.get_by_text("Export finished").wait_for(timeout=30_000)
    assert page.locator("progress").get_attribute("value") == "10"

    # A booking made in Outlook appears in the room's feed after a pull.
    made = simulator.sim.graph.create_event(directory.room, outlook_event("Board meeting", 5),
                                            as_user=directory.other_staff)
    invoke(app, "room_pull", {"system": system, "id": "room-101"})
    feed = f"/api/systems/{system}/connections/space/room-101/external-events"
    wait_for(lambda: api.get(feed).json()["changes"], what="the pull to publish the booking")
    page.get_by_role("button", name="Check for new changes").click()
    row = page.locator("table", has_text="Changes made in Outlook").locator("tbody tr").first
    row.wait_for()
    assert "Board meeting" in row.inner_text() and "created" in row.inner_text()
    assert "Ned Flanders" in row.inner_text()  # the location's populate-creator switch
    changes = api.get(feed).json()["changes"]
    assert [c["event_id"] for c in changes] == [made["id"]]  # the 10 exported bookings never come back
    assert page.locator("table", has_text="Changes made in Outlook").locator("tbody tr").count() == 1
    shots(page, "05-space-feed")

    # Another room in app mode: no sign-in, picked from the directory's rooms.
    page.get_by_role("link", name="Connections", exact=True).click()
    page.get_by_text("A space (room bookings, two-way)").click()
    page.get_by_label("ID in the booking system").fill("room-202")
    page.get_by_text("The app's own access, no sign-in (app mode)").click()
    page.get_by_label("Room mailbox").select_option(directory.other_room)
    page.get_by_role("button", name="Connect the room").click()
    page.get_by_role("heading", name="Space room-202").wait_for()
    health = page.locator("section", has_text="Authorization and health").first
    assert "The app's own access (no sign-in)" in health.inner_text()
    in_app_mode = api.get(f"/api/systems/{system}/connections/space/room-202").json()
    assert (in_app_mode["mode"], in_app_mode["status"], in_app_mode["sync_resource"]) == (
        "app", "connected", directory.other_room)
    assert in_app_mode["sync_calendar_id"]  # the room's default calendar, chosen when it was connected

    # Consent withdrawn in Microsoft: the token refresh finds out, and the console shows the alert.
    simulator.control.revoke_consent(directory.staff, directory.client_id)
    invoke(app, "token_refresh", {"system": system, "kind": "user", "id": "u1"})
    wait_for(lambda: api.get(f"/api/systems/{system}/alerts").json()["alerts"], what="the alert")
    page.get_by_role("link", name="Alerts", exact=False).first.click()
    alert = page.locator("li.alert").first
    alert.wait_for()
    text = alert.inner_text()
    assert "Reauthorization required" in text and "AADSTS65001" in text and "What to do" in text
    expect(page.locator("#alert-count")).to_have_text("1 open")
    shots(page, "06-alerts")
    page.get_by_role("link", name="Connections", exact=True).click()
    page.get_by_role("table").get_by_text("Reauthorization required").wait_for()
    shots(page, "07-connections")

    assert system_key not in page.url and FUNCTION_KEY not in page.url
    assert page.evaluate("localStorage.length") == 0
    context.close()
    print(f"console flow: {time.monotonic() - started:.1f} s")


@pytest.mark.browser
def test_the_page_is_keyboard_reachable_and_keeps_no_key_after_the_tab(app, browser):  # noqa: F811
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{app.url}/api/console")
    page.get_by_label("System ID").wait_for()
    assert page.evaluate("document.activeElement.name") == "system"  # the first field has the focus
    page.keyboard.press("Shift+Tab")  # before it, only the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    assert unfocusable(page, 6) == []
    for label in ("System ID", "Function key", "System key"):
        control = page.get_by_label(label)
        assert control.get_attribute("id") and control.evaluate("e => e.labels.length") == 1
    assert page.get_by_label("Function key").get_attribute("type") == "password"
    assert page.evaluate(AUDIT) == []
    # Wrong keys are refused with what to check, and nothing is kept.
    page.get_by_label("System ID").fill("demo")
    page.get_by_label("Function key").fill("not-the-key")
    page.get_by_role("button", name="Open").click()
    refusal = page.get_by_role("alert")
    refusal.wait_for()
    assert "Check the function key" in refusal.inner_text()
    assert page.evaluate("sessionStorage.length + localStorage.length") == 0
    # The audit sees what it must refuse: faint text, an unlabelled field, an unnamed button.
    page.evaluate("""() => document.querySelector('form').append(
        Object.assign(document.createElement('p'), {textContent: 'faint', style: 'color: #b0b0b0'}),
        document.createElement('input'), document.createElement('button'))""")
    found = page.evaluate(AUDIT)
    assert len(found) == 3 and found[0].startswith("contrast 2.") and "0 labels" in found[1], found
    context.close()
    # A new tab (context) of the same browser starts without keys.
    fresh = browser.new_context()
    other = fresh.new_page()
    other.goto(f"{app.url}/api/console")
    other.get_by_label("System ID").wait_for()
    assert other.evaluate("sessionStorage.length + localStorage.length") == 0
    fresh.close()


def test_the_console_is_static_and_locked_down(app):
    page = requests.get(f"{app.url}/api/console", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "form-action 'none'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    assert '<script type="module" src="/api/console/app.js">' in page.text
    script = requests.get(f"{app.url}/api/console/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert requests.get(f"{app.url}/api/console/", timeout=10).text == page.text
    for missing in ("nope.js", "..%2Fsettings.py", "__init__.py", "app.JS"):
        answer = requests.get(f"{app.url}/api/console/{missing}", timeout=10)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", missing


def test_the_console_is_off_unless_enabled(app, tmp_path):
    """A deployment without CONSOLE_ENABLED (Azure's default) answers the console's routes as routes that do not
    exist; the API is unchanged."""
    with isolated_storage() as storage:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = AppProcess(app_env(app.env, storage, url, CONSOLE_ENABLED="false"), port, tmp_path / "app.log")
        process.start()
        try:
            for path in ("/api/console", "/api/console/", "/api/console/app.js"):
                answer = requests.get(f"{url}{path}", timeout=10)
                assert answer.status_code == 404, (path, answer.text, process.errors())
                assert answer.json()["error"]["code"] == "not_found"
            assert requests.get(f"{url}/api/openapi.json", timeout=10).status_code == 200
        finally:
            process.stop()
