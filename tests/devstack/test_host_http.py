"""The local host's HTTP side: routing as Azure does it, keys, request/response conversion, error shape, logging."""

from __future__ import annotations

import json
import logging

import azure.functions as func
import pytest
import requests
from werkzeug.test import Client

from devstack.host import LocalFunctionsHost
from devstack.ports import free_port, is_listening

FUNCTION_KEY = "function-key-123"
MASTER_KEY = "master-key-456"


def make_host(app: func.FunctionApp, host_json: dict | None = None) -> LocalFunctionsHost:
    return LocalFunctionsHost(app, host_json=host_json or {}, env={}, function_key=FUNCTION_KEY,
                              master_key=MASTER_KEY)


def echo(req: func.HttpRequest, label: str) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"fn": label, "route": dict(req.route_params)}), mimetype="application/json")


@pytest.fixture
def routing_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{id:int}", methods=["GET"])
    def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "by_id")

    @app.route(route="items/{name:alpha}", methods=["GET"])
    def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "by_name")

    @app.route(route="items/{key}", methods=["GET"])
    def item_by_key(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "by_key")

    @app.route(route="items/new", methods=["POST"])
    def item_new(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "new")

    @app.route(route="jobs/{job:guid}", methods=["GET"])
    def job(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "job")

    @app.route(route="exports/{job?}", methods=["GET"])
    def exports(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "exports")

    @app.route(route="pages/{page:int=1}", methods=["GET"])
    def pages(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "pages")

    @app.route(route="files/{name}.{ext}", methods=["GET"])
    def files(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "files")

    @app.route(route="{*rest}")
    def fallback(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "fallback")

    @app.route(route="static/{*path}", methods=["GET"])
    def static(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "static")

    @app.route(route="static/special", methods=["GET"])
    def special(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "special")

    return app


@pytest.mark.parametrize(("path", "fn", "route"), [
    ("/api/items/007", "by_id", {"id": "007"}),  # constrained beats plain; the text reaches the function as is
    ("/api/items/-3", "by_id", {"id": "-3"}),
    ("/api/items/abc", "by_name", {"name": "abc"}),
    ("/api/items/a-1", "by_key", {"key": "a-1"}),
    ("/api/items/new", "by_name", {"name": "new"}),  # the literal route is POST-only, so GET goes on matching
    ("/api/jobs/0b6f1c52-0d3e-4c58-9a8d-2f1d3e4c5b6a", "job", {"job": "0b6f1c52-0d3e-4c58-9a8d-2f1d3e4c5b6a"}),
    ("/api/exports", "exports", {}),
    ("/api/exports/j1", "exports", {"job": "j1"}),
    ("/api/pages", "pages", {"page": "1"}),
    ("/api/pages/4", "pages", {"page": "4"}),
    ("/api/files/report.pdf", "files", {"name": "report", "ext": "pdf"}),
    ("/api/static/special", "special", {}),  # a literal beats the catch-all
    ("/api/static/css/site.css", "static", {"path": "css/site.css"}),
    ("/api/jobs/not-a-guid", "fallback", {"rest": "jobs/not-a-guid"}),  # catch-all only when nothing else matches
    ("/api/a/b/c", "fallback", {"rest": "a/b/c"}),
    ("/api/items/7/", "by_id", {"id": "7"}),  # a trailing slash is tolerated
])
def test_routing(routing_app: func.FunctionApp, path: str, fn: str, route: dict) -> None:
    response = Client(make_host(routing_app).wsgi_app).get(path)
    assert response.status_code == 200, response.text
    assert response.json == {"fn": fn, "route": route}


def test_method_routing_and_405(routing_app: func.FunctionApp) -> None:
    client = Client(make_host(routing_app).wsgi_app)
    assert client.post("/api/items/new").json["fn"] == "new"
    response = client.delete("/api/items/7")
    # the root catch-all accepts every method, so it answers rather than a 405 (ASP.NET endpoint selection)
    assert response.json["fn"] == "fallback"

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="things/{id}", methods=["GET", "PUT"])
    def things(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    response = Client(make_host(app).wsgi_app).delete("/api/things/1")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert {"GET", "PUT"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_unknown_path_is_404_json() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="health", methods=["GET"])
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    client = Client(make_host(app).wsgi_app)
    for path in ("/api/nothing", "/health", "/", "/api"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "application/json"
        assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(("prefix", "ok_path", "missing_path"), [
    ("v1", "/v1/health", "/api/health"),
    ("", "/health", "/api/health"),
    ("/edge/", "/edge/health", "/health"),
])
def test_route_prefix_from_host_json(prefix: str, ok_path: str, missing_path: str) -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="health", methods=["GET"])
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    host = make_host(app, {"extensions": {"http": {"routePrefix": prefix}}})
    client = Client(host.wsgi_app)
    assert client.get(ok_path).status_code == 200
    assert client.get(missing_path).status_code == 404
    assert host.describe()[0]["route"] == ok_path


@pytest.fixture
def keyed_client() -> Client:
    app = func.FunctionApp()  # FUNCTION is the default level, as in Azure

    @app.route(route="secured", methods=["GET"])
    def secured(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("secured")

    @app.route(route="admin-only", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
    def admin_only(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("admin")

    @app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def open_route(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("open")

    return Client(make_host(app).wsgi_app)


@pytest.mark.parametrize(("path", "query", "headers", "status"), [
    ("/api/secured", "", {}, 401),
    ("/api/secured", "code=wrong", {}, 401),
    ("/api/secured", "", {"x-functions-key": "wrong"}, 401),
    ("/api/secured", f"code={FUNCTION_KEY}", {}, 200),
    ("/api/secured", "", {"x-functions-key": FUNCTION_KEY}, 200),
    ("/api/secured", "", {"X-Functions-Key": MASTER_KEY}, 200),  # the master key opens every level
    ("/api/admin-only", f"code={FUNCTION_KEY}", {}, 401),
    ("/api/admin-only", "", {"x-functions-key": FUNCTION_KEY}, 401),
    ("/api/admin-only", f"code={MASTER_KEY}", {}, 200),
    ("/api/admin-only", "", {"x-functions-key": MASTER_KEY}, 200),
    ("/api/open", "", {}, 200),
])
def test_auth_levels_and_keys(keyed_client: Client, path: str, query: str, headers: dict, status: int) -> None:
    response = keyed_client.get(path, query_string=query, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json["error"]["code"] == "unauthorized"


def test_request_and_response_conversion() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    seen: dict = {}

    @app.route(route="systems/{system}/echo", methods=["POST"], trigger_arg_name="request")
    def echo_all(request: func.HttpRequest) -> func.HttpResponse:
        seen.update(method=request.method, url=request.url, params=dict(request.params),
                    route=dict(request.route_params), body=request.get_json(),
                    header=request.headers.get("X-Custom"), content_type=request.headers.get("content-type"))
        return func.HttpResponse(json.dumps({"ok": True}), status_code=201, mimetype="application/json",
                                 headers={"Location": "/api/x/1", "X-Trace": "t1"})

    @app.route(route="text", methods=["GET"])
    def text(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("héllo", mimetype="text/html", charset="utf-8")

    @app.route(route="plain-string", methods=["GET"])
    def plain_string(req: func.HttpRequest) -> str:
        return "just a string"

    @app.route(route="nothing", methods=["GET"])
    def nothing(req: func.HttpRequest) -> None:
        return None

    client = Client(make_host(app).wsgi_app)
    response = client.post("/api/systems/s1/echo?a=1&b=two", json={"x": 1}, headers={"X-Custom": "v"})
    assert response.status_code == 201
    assert response.json == {"ok": True}
    assert response.headers["Location"] == "/api/x/1"
    assert response.headers["X-Trace"] == "t1"
    assert response.headers["Content-Type"] == "application/json"
    assert seen == {"method": "POST", "url": "http://localhost/api/systems/s1/echo?a=1&b=two",
                    "params": {"a": "1", "b": "two"}, "route": {"system": "s1"}, "body": {"x": 1},
                    "header": "v", "content_type": "application/json"}

    response = client.get("/api/text")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.get_data() == "héllo".encode()
    assert client.get("/api/plain-string").text == "just a string"
    assert client.get("/api/nothing").status_code == 204


def test_async_handler_with_context() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.function_name("AsyncHello")
    @app.route(route="hello/{who}", methods=["GET"])
    async def hello(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        import asyncio

        await asyncio.sleep(0.01)
        body = {"who": req.route_params["who"], "function": context.function_name,
                "invocation": context.invocation_id}
        return func.HttpResponse(json.dumps(body), mimetype="application/json")

    client = Client(make_host(app).wsgi_app)
    first, second = client.get("/api/hello/ann").json, client.get("/api/hello/bob").json
    assert first["who"] == "ann" and second["who"] == "bob"
    assert first["function"] == "AsyncHello"
    assert first["invocation"] != second["invocation"]


def test_raising_handler_is_500_json_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="boom", methods=["GET"])
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret internal detail")

    @app.route(route="bad-return", methods=["GET"])
    def bad_return(req: func.HttpRequest) -> dict:
        return {"not": "a response"}

    client = Client(make_host(app).wsgi_app)
    with caplog.at_level(logging.INFO, logger="devstack.host"):
        for path in ("/api/boom", "/api/bad-return"):
            response = client.get(path)
            assert response.status_code == 500
            assert response.json["error"]["code"] == "internal_error"
            assert "Traceback" not in response.text
            assert "secret internal detail" not in response.text
    failures = [r for r in caplog.records if "Failed" in r.getMessage()]
    assert [r.exc_info[0] for r in failures] == [RuntimeError, TypeError]  # the traceback goes to the log


def test_one_log_line_per_invocation_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    app = func.FunctionApp()

    @app.route(route="login", methods=["POST"])
    def login(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    client = Client(make_host(app).wsgi_app)
    with caplog.at_level(logging.DEBUG, logger="devstack.host"):
        client.post("/api/login?code=" + FUNCTION_KEY + "&state=query-secret", data="body-secret",
                    headers={"Authorization": "Bearer header-secret"})
        client.post("/api/login?code=wrong-key")
    text = "\n".join(r.getMessage() for r in caplog.records)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Executed")]
    assert len(lines) == 1
    assert "'login'" in lines[0] and "Succeeded" in lines[0] and "trigger=http" in lines[0]
    assert "Duration=" in lines[0]
    for secret in (FUNCTION_KEY, "wrong-key", "query-secret", "body-secret", "header-secret"):
        assert secret not in text


def test_describe_lists_every_function() -> None:
    app = func.FunctionApp()

    @app.route(route="systems/{system}/alerts", methods=["GET"])
    def alerts(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    @app.route(route="health", auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    @app.schedule(schedule="0 */5 * * * *", arg_name="timer")
    def pull(timer: func.TimerRequest) -> None:
        return None

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    def worker(msg: func.QueueMessage) -> None:
        return None

    assert make_host(app).describe() == [
        {"name": "alerts", "trigger": "http", "route": "/api/systems/{system}/alerts", "methods": ["GET"],
         "auth_level": "function"},
        {"name": "health", "trigger": "http", "route": "/api/health", "methods": ["*"], "auth_level": "anonymous"},
        {"name": "pull", "trigger": "timer", "schedule": "0 */5 * * * *", "run_on_startup": False},
        {"name": "worker", "trigger": "queue", "queue": "work"},
    ]


def test_same_app_can_be_hosted_twice() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="health")
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    make_host(app)
    assert Client(make_host(app).wsgi_app).get("/api/health").status_code == 200


def test_what_the_worker_would_refuse_is_refused_at_construction() -> None:
    unbound = func.FunctionApp()

    @unbound.route(route="x")
    def needs_more(req: func.HttpRequest, extra: str) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(ValueError, match="parameter 'extra' matches no binding"):
        make_host(unbound)

    misnamed = func.FunctionApp()

    @misnamed.route(route="y", trigger_arg_name="request")
    def wrong_name(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(ValueError, match="request"):
        make_host(misnamed)

    table = func.FunctionApp()

    @table.route(route="z")
    @table.table_input(arg_name="row", table_name="t", connection="AzureWebJobsStorage")
    def with_table(req: func.HttpRequest, row: str) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(ValueError, match="not supported"):
        make_host(table)


def test_real_socket_start_and_stop() -> None:
    app = func.FunctionApp()

    @app.route(route="ping/{n:int}", methods=["GET"])
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"pong": req.route_params["n"]}), mimetype="application/json")

    port = free_port()
    host = make_host(app)
    host.start(port=port)
    try:
        base = f"http://127.0.0.1:{port}"
        response = requests.get(f"{base}/api/ping/5", headers={"x-functions-key": FUNCTION_KEY}, timeout=5)
        assert response.status_code == 200
        assert response.json() == {"pong": "5"}
        assert requests.get(f"{base}/api/ping/5", timeout=5).status_code == 401
        assert requests.get(f"{base}/api/nowhere", timeout=5).json()["error"]["code"] == "not_found"
    finally:
        host.stop()
    assert not is_listening(port)
