"""Timer triggers (NCRONTAB, %SETTING% schedules, run_on_startup) and on-demand runs through the admin API."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import azure.functions as func
import pytest
from werkzeug.test import Client

from devstack.host import LocalFunctionsHost
from devstack.host.timers import NcrontabSchedule
from devstack.ports import free_port

FUNCTION_KEY = "fk-timers"
MASTER_KEY = "mk-timers"


def make_host(app: func.FunctionApp, env: dict | None = None) -> LocalFunctionsHost:
    return LocalFunctionsHost(app, host_json={}, env=env or {}, function_key=FUNCTION_KEY, master_key=MASTER_KEY)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("*/10 * * * * *", at(2026, 3, 2, 12, 0, 3), at(2026, 3, 2, 12, 0, 10)),  # seconds come first
    ("0 */5 * * * *", at(2026, 3, 2, 12, 0, 0), at(2026, 3, 2, 12, 5, 0)),  # strictly after the base
    ("30 15 9 * * 1-5", at(2026, 3, 6, 10, 0, 0), at(2026, 3, 9, 9, 15, 30)),  # Friday 10:00 -> Monday 09:15:30
    ("0 0 2 * * Sun", at(2026, 3, 2, 0, 0, 0), at(2026, 3, 8, 2, 0, 0)),
    ("0 0 0 13 * 5", at(2026, 1, 1, 0, 0, 0), at(2026, 2, 13, 0, 0, 0)),  # day AND weekday: Friday the 13th
])
def test_next_fire_from_six_field_schedule(expression: str, after: datetime, expected: datetime) -> None:
    assert NcrontabSchedule(expression).next_after(after) == expected


@pytest.mark.parametrize("expression", ["*/5 * * * *", "0 0 * * * * *", "61 * * * * *", "every minute"])
def test_invalid_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="six-field NCRONTAB"):
        NcrontabSchedule(expression)


def test_schedule_from_app_setting() -> None:
    app = func.FunctionApp()

    @app.schedule(schedule="%PULL_SCHEDULE%", arg_name="timer")
    def pull(timer: func.TimerRequest) -> None:
        return None

    host = make_host(app, {"PULL_SCHEDULE": "0 */15 * * * *"})
    assert host.describe() == [{"name": "pull", "trigger": "timer", "schedule": "0 */15 * * * *",
                                "run_on_startup": False}]
    with pytest.raises(ValueError, match="PULL_SCHEDULE"):
        make_host(app, {})


def test_run_on_startup_and_schedule_fire_and_stop_promptly() -> None:
    app = func.FunctionApp()
    startup_runs: list[func.TimerRequest] = []
    ticks: list[float] = []
    ticked_twice = threading.Event()
    started = threading.Event()

    @app.schedule(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
    def yearly(timer: func.TimerRequest) -> None:
        startup_runs.append(timer)
        started.set()

    @app.schedule(schedule="* * * * * *", arg_name="timer")
    def every_second(timer: func.TimerRequest, context: func.Context) -> None:
        ticks.append(time.monotonic())
        if len(ticks) >= 2:
            ticked_twice.set()

    host = make_host(app)
    host.start(port=free_port())
    try:
        assert started.wait(5)
        assert ticked_twice.wait(5)
    finally:
        stop_began = time.monotonic()
        host.stop()
    assert time.monotonic() - stop_began < 1.5
    assert len(startup_runs) == 1 and startup_runs[0].past_due is False
    assert set(startup_runs[0].schedule_status) == {"Last", "Next", "LastUpdated"}
    assert 0.5 < ticks[1] - ticks[0] < 1.5  # once per second, not back to back
    count = len(ticks)
    time.sleep(1.2)
    assert len(ticks) == count  # nothing fires after stop()


@pytest.fixture
def admin_app() -> tuple[func.FunctionApp, dict[str, list], threading.Event]:
    app = func.FunctionApp()
    calls: dict[str, list] = {"timer": [], "queue": []}
    done = threading.Event()

    @app.schedule(schedule="0 0 3 * * *", arg_name="timer")
    def nightly(timer: func.TimerRequest) -> None:
        calls["timer"].append(timer.past_due)
        done.set()

    @app.function_name("ProcessWork")
    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    def process(msg: func.QueueMessage) -> None:
        calls["queue"].append((msg.get_body().decode(), msg.dequeue_count))
        done.set()

    @app.route(route="health")
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    return app, calls, done


def test_admin_invoke_runs_a_timer(admin_app: tuple) -> None:
    app, calls, done = admin_app
    client = Client(make_host(app).wsgi_app)
    response = client.post("/admin/functions/nightly", json={"input": ""}, headers={"x-functions-key": MASTER_KEY})
    assert response.status_code == 202
    assert done.wait(5)
    assert calls["timer"] == [False]


def test_admin_invoke_passes_input_to_a_queue_function(admin_app: tuple) -> None:
    app, calls, done = admin_app
    client = Client(make_host(app).wsgi_app)
    response = client.post("/admin/functions/processwork", json={"input": '{"connection": "c1"}'},
                           headers={"x-functions-key": MASTER_KEY})
    assert response.status_code == 202
    assert done.wait(5)
    assert calls["queue"] == [('{"connection": "c1"}', 1)]


@pytest.mark.parametrize(("name", "headers", "status", "code"), [
    ("nightly", {}, 401, "unauthorized"),
    ("nightly", {"x-functions-key": FUNCTION_KEY}, 401, "unauthorized"),  # the function key is not enough
    ("missing", {"x-functions-key": MASTER_KEY}, 404, "not_found"),
    ("health", {"x-functions-key": MASTER_KEY}, 400, "bad_request"),
])
def test_admin_invoke_refusals(admin_app: tuple, name: str, headers: dict, status: int, code: str) -> None:
    app, calls, _ = admin_app
    response = Client(make_host(app).wsgi_app).post(f"/admin/functions/{name}", json={"input": ""}, headers=headers)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert calls == {"timer": [], "queue": []}


def test_invoke_method_runs_synchronously(admin_app: tuple) -> None:
    app, calls, _ = admin_app
    host = make_host(app)
    host.invoke("nightly")
    host.invoke("ProcessWork", "hello")
    assert calls == {"timer": [False], "queue": [("hello", 1)]}
    with pytest.raises(KeyError):
        host.invoke("missing")
    with pytest.raises(ValueError, match="HTTP"):
        host.invoke("health")
