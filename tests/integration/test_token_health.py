"""Token health in simulated time: the sweep (run with the simulator's clock) fans refreshes out through the
queue, and the local host's queue worker performs them, as in Azure."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.models import RefreshDue
from tests.helpers import configure, connect, make_directory, new_system, wait_for


def status(api, system, subject="u1"):
    return api.get(f"/api/systems/{system}/connections/user/{subject}").json()


def test_ninety_idle_days_pass_and_the_connection_still_works(api, simulator, directory, system, timed):
    connect(api, simulator, system, "user", "u1", directory.staff)
    for _ in range(3):
        before = status(api, system)["token_refreshed_at"]
        simulator.control.advance_clock(days=30, seconds=3600)
        assert timed.token_health.sweep(system)["refreshes_queued"] >= 1
        wait_for(lambda b=before: status(api, system)["token_refreshed_at"] != b, what="the queued refresh")
        assert status(api, system)["status"] == "connected"
    # 90 simulated days after sign-in, Microsoft still accepts the (rotated) refresh token.
    assert simulator.sim.clock.offset >= 90 * 86400
    calendars = api.get(f"/api/systems/{system}/connections/user/u1/calendars")
    assert calendars.status_code == 200, calendars.text
    refreshes = simulator.sim.counters.snapshot()["counts"].get("identity.token.refresh_token.ok", 0)
    assert refreshes >= 3


def test_without_the_keep_alive_the_token_dies_at_90_days(api, simulator, directory, system, timed):
    connect(api, simulator, system, "user", "u1", directory.staff)
    simulator.control.advance_clock(days=91)
    timed.token_health.sweep(system)
    wait_for(lambda: status(api, system)["status"] == "reauthorization_required", what="reauthorization")
    assert status(api, system)["last_error"]["microsoft_code"] == "AADSTS700082"


@pytest.mark.parametrize(("withdraw", "code"), [
    ("sessions revoked", "AADSTS50173"),
    ("consent withdrawn", "AADSTS65001"),
    ("user disabled", "AADSTS50057"),
])
def test_revocation_becomes_an_alert_within_one_sweep_and_reauthorizing_clears_it(
        api, simulator, directory, system, timed, withdraw, code):
    connect(api, simulator, system, "user", "u1", directory.staff)
    if withdraw == "sessions revoked":
        simulator.control.revoke_sessions(directory.staff)
    elif withdraw == "consent withdrawn":
        simulator.control.revoke_consent(directory.staff, directory.client_id)
    else:
        simulator.control.disable_user(directory.staff)
    simulator.control.advance_clock(days=31)  # due for its keep-alive refresh: the sweep reads only what is due
    timed.token_health.sweep(system)
    wait_for(lambda: status(api, system)["status"] == "reauthorization_required", what="reauthorization")
    assert status(api, system)["last_error"]["microsoft_code"] == code
    alerts = api.get(f"/api/systems/{system}/alerts").json()["alerts"]
    assert [(a["type"], a["subject"], a["microsoft_code"], a["status"]) for a in alerts] == [
        ("reauthorization_required", "user:u1", code, "open")]
    # Graph work on a dead connection is refused clearly, without calling Microsoft.
    refused = api.get(f"/api/systems/{system}/connections/user/u1/calendars")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "reauthorization_required"
    if withdraw == "user disabled":
        simulator.control.enable_user(directory.staff)
    connect(api, simulator, system, "user", "u1", directory.staff)
    assert status(api, system)["status"] == "connected"
    alerts = api.get(f"/api/systems/{system}/alerts").json()["alerts"]
    assert [(a["type"], a["status"]) for a in alerts] == [("reauthorization_required", "resolved")]


def test_client_secret_expiry_is_warned_at_30_and_7_days_then_reported(api, simulator, directory, timed):
    system = new_system()
    now = simulator.sim.clock.now()
    configure(api, system, directory, client_secret_expires_on=(now + timedelta(days=45)).isoformat())
    timed.token_health.sweep(system)
    assert api.get(f"/api/systems/{system}/alerts").json()["alerts"] == []
    simulator.control.advance_clock(days=16)  # 29 days left
    timed.token_health.sweep(system)
    (alert,) = api.get(f"/api/systems/{system}/alerts").json()["alerts"]
    assert alert["type"] == "client_secret_expiring" and "in 28 days" in alert["message"]
    simulator.control.advance_clock(days=23)  # 6 days left
    timed.token_health.sweep(system)
    (alert,) = api.get(f"/api/systems/{system}/alerts").json()["alerts"]
    assert "in 5 days" in alert["message"] and alert["occurrences"] == 2
    simulator.control.advance_clock(days=7)
    timed.token_health.sweep(system)
    types = {a["type"]: a["status"] for a in api.get(f"/api/systems/{system}/alerts").json()["alerts"]}
    assert types["client_secret_expired"] == "open"


def test_credentials_that_stop_working_raise_an_alert(api, simulator, app, timed):
    d = make_directory(simulator, app.redirect_uri)
    short = simulator.control.add_secret(d.client_id, expires_in_days=10)
    system = new_system()
    configure(api, system, d, client_secret=short["value"])
    simulator.control.advance_clock(days=11)
    timed.token_health.sweep(system)
    alerts = api.get(f"/api/systems/{system}/alerts").json()["alerts"]
    assert [(a["type"], a["microsoft_code"]) for a in alerts] == [("credentials_invalid", "AADSTS7000222")]
    integration = api.get(f"/api/systems/{system}/integration").json()
    assert integration["credentials"] == {**integration["credentials"], "ok": False,
                                          "microsoft_code": "AADSTS7000222"}


def test_the_schedule_reads_only_what_is_due(timed):
    schedule = timed.repos.refresh_schedule
    system = new_system()
    now = datetime.now(UTC)
    entries = [RefreshDue(due_at=now + timedelta(days=d), system=system, kind="user", subject_id=f"u{d}")
               for d in range(-3, 40)]
    schedule.upsert_many(entries)
    due = [e for e in schedule.due(now) if e.system == system]
    assert [e.subject_id for e in due] == ["u-3", "u-2", "u-1", "u0"]  # due at or before now, oldest first
