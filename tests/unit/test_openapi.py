"""The OpenAPI description (shared/openapi.py, served at GET /api/openapi.json) against what function_app.py
registers: every HTTP route and method both ways, the anonymous ones, path parameters, the error schema and the
security schemes; and the document is valid OpenAPI 3.0."""

from __future__ import annotations

import json
import re
from typing import Any

import azure.functions as func
import jsonschema
import pytest

from devstack.stack import REPO
from shared import errors
from shared.openapi import document

METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
_TOKEN = re.compile(r"\{([^{}]*)\}")


def route_prefix() -> str:
    host = json.loads((REPO / "host.json").read_text())
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api").strip("/")
    return f"/{prefix}" if prefix else ""


def template_variants(template: str) -> list[str]:
    """OpenAPI path templates for an Azure Functions route: constraints dropped (`{n:int}` -> `{n}`), and one
    path per optional trailing parameter (`a/{b?}` -> `a`, `a/{b}`), as the Functions host serves them."""
    segments = [s for s in template.strip("/").split("/") if s]
    variants: list[str] = []
    plain: list[str] = []
    for segment in segments:
        tokens = _TOKEN.findall(segment)
        optional = len(tokens) == 1 and _TOKEN.fullmatch(segment) and (
            tokens[0].rstrip().endswith("?") or "=" in tokens[0] or tokens[0].lstrip().startswith("*"))
        if optional:
            variants.append("/".join(plain))
        plain.append(_TOKEN.sub(lambda m: "{" + re.split(r"[:=?]", m.group(1).strip().lstrip("*"))[0] + "}",
                                segment))
    variants.append("/".join(plain))
    return [f"{route_prefix()}/{v}" for v in variants]


def registered() -> dict[tuple[str, str], func.AuthLevel]:
    """(path, METHOD) -> auth level, for every HTTP function function_app.py registers."""
    import function_app

    function_app.app.functions_bindings = None  # get_functions() refuses a second indexing otherwise
    try:
        functions = function_app.app.get_functions()
    finally:
        function_app.app.functions_bindings = None
    routes: dict[tuple[str, str], func.AuthLevel] = {}
    for function in functions:
        trigger = function.get_trigger()
        if trigger.get_binding_name() != "httpTrigger":
            continue
        name = function.get_function_name()
        assert trigger.methods, f"{name}: an HTTP function must list its methods, or the description cannot"
        for path in template_variants(trigger.route or name):
            for method in trigger.methods:
                key = (path, str(getattr(method, "value", method)).upper())
                assert key not in routes, f"{key} is registered twice"
                routes[key] = trigger.auth_level
    return routes


def described(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(path, method.upper()): operation for path, item in doc["paths"].items()
            for method, operation in item.items() if method in METHODS}


def resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_template_variants():
    assert template_variants("a/{b}/c") == [f"{route_prefix()}/a/{{b}}/c"]
    assert template_variants("a/{b:int}/{c?}") == [f"{route_prefix()}/a/{{b}}", f"{route_prefix()}/a/{{b}}/{{c}}"]


def test_every_registered_route_is_described_and_nothing_else():
    routes, operations = registered(), described(document())
    missing = sorted(set(routes) - set(operations))
    extra = sorted(set(operations) - set(routes))
    assert not missing, f"registered but not in shared/openapi.py: {missing}"
    assert not extra, f"in shared/openapi.py but not registered by function_app.py: {extra}"
    assert len(routes) >= 20


def test_anonymous_routes_are_marked_and_keyed_ones_inherit_the_key():
    doc = document()
    operations = described(doc)
    assert doc["security"] == [{"functionKey": [], "systemKey": []}, {"functionKeyQuery": [], "systemKey": []}]
    for key, level in registered().items():
        operation = operations[key]
        if level == func.AuthLevel.ANONYMOUS:
            assert operation.get("security") == [], f"{key} is anonymous: mark it `security: []`"
            assert "401" not in operation["responses"], key
        elif level == func.AuthLevel.ADMIN:
            assert operation.get("security") == [{"masterKey": []}, {"masterKeyQuery": []}], key
            assert "401" in operation["responses"], key
        else:
            assert "security" not in operation, f"{key} needs the function and system keys: leave the global one"
            for status in ("401", "403"):
                assert resolve(doc, operation["responses"][status]["content"]["application/json"]["schema"]) \
                    == doc["components"]["schemas"]["Error"], (key, status)


def test_security_schemes_are_the_function_key_header_and_query():
    schemes = document()["components"]["securitySchemes"]
    assert schemes["functionKey"] == {**schemes["functionKey"], "type": "apiKey", "in": "header",
                                      "name": "x-functions-key"}
    assert schemes["functionKeyQuery"] == {**schemes["functionKeyQuery"], "type": "apiKey", "in": "query",
                                           "name": "code"}
    assert schemes["systemKey"] == {**schemes["systemKey"], "type": "apiKey", "in": "header",
                                    "name": "x-system-key"}
    assert schemes["masterKey"]["name"] == "x-functions-key" and schemes["masterKeyQuery"]["name"] == "code"


def test_every_system_route_is_keyed_by_the_system_key_or_is_the_operators():
    """Routes under systems/{system}: function level (the system key is checked by @endpoint) or admin level
    (the operator's, master key); none anonymous."""
    systems = [(path, level) for (path, _), level in registered().items() if path.startswith("/api/systems/{system}")]
    assert len(systems) >= 20
    assert all(level in (func.AuthLevel.FUNCTION, func.AuthLevel.ADMIN) for _, level in systems), systems
    admin = sorted({path for path, level in systems if level == func.AuthLevel.ADMIN})
    assert admin == ["/api/systems/{system}", "/api/systems/{system}/keys", "/api/systems/{system}/keys/{key_id}"]


def test_path_parameters_match_each_template():
    doc = document()
    for path, item in doc["paths"].items():
        names = set(_TOKEN.findall(path))
        for method, operation in item.items():
            if method not in METHODS:
                continue
            params = [resolve(doc, p) for p in [*item.get("parameters", []), *operation.get("parameters", [])]]
            in_path = [p for p in params if p["in"] == "path"]
            assert {p["name"] for p in in_path} == names, (path, method)
            assert all(p["required"] for p in in_path), (path, method)
            assert len({(p["name"], p["in"]) for p in params}) == len(params), f"duplicate parameter: {path}"


def test_document_is_valid_openapi_3_0_and_every_ref_resolves():
    from schemathesis.specs.openapi.definitions import OPENAPI_30

    doc = document()
    problems = [f"{list(e.absolute_path)}: {e.message[:200]}"
                for e in jsonschema.Draft4Validator(OPENAPI_30).iter_errors(doc)]
    assert not problems, problems[:5]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(doc, node)  # KeyError when dangling
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    ids = [op["operationId"] for op in described(doc).values()]
    assert len(ids) == len(set(ids))


def test_json_error_responses_use_the_error_schema():
    doc = document()
    error_schema = doc["components"]["schemas"]["Error"]
    for key, operation in described(doc).items():
        assert operation["responses"], key
        for status, response in operation["responses"].items():
            content = resolve(doc, response).get("content", {})
            if int(status) < 400 or "application/json" not in content or key == ("/api/health", "GET"):
                continue
            assert resolve(doc, content["application/json"]["schema"]) == error_schema, (key, status)


@pytest.mark.parametrize("error", [
    errors.ValidationFailed("client_id", "is required"),
    errors.NotFound("no such thing"),
    errors.DomainError("App ID or Secret is incorrect", microsoft_code="7000215"),
    errors.DependencyUnavailable("storage is down"),
])
def test_the_error_schema_accepts_what_the_app_answers(error):
    schema = document()["components"]["schemas"]["Error"]
    jsonschema.Draft4Validator(schema).validate(error.to_body())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({"error": {"code": "x"}})


def test_webhook_secret_is_a_write_only_string_of_put_integration():
    doc = document()
    put = doc["paths"]["/api/systems/{system}/integration"]["put"]
    settings = resolve(doc, put["requestBody"]["content"]["application/json"]["schema"])
    secret = settings["properties"]["webhook_secret"]
    assert secret["type"] == "string" and secret["writeOnly"] is True
    assert settings["properties"]["client_secret"]["writeOnly"] is True
    for status in ("200", "201"):
        shown = resolve(doc, put["responses"][status]["content"]["application/json"]["schema"])
        assert "webhook_secret" not in shown["properties"] and "client_secret" in shown["properties"]
        assert shown["properties"]["client_secret"]["type"] == "object"  # set/hint/expiry, never the value


def test_the_route_serves_the_document_anonymously():
    import function_app

    function_app.app.functions_bindings = None
    try:
        functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    finally:
        function_app.app.functions_bindings = None
    function = functions["openapi"]
    assert function.get_trigger().auth_level == func.AuthLevel.ANONYMOUS
    response = function.get_user_function()(func.HttpRequest("GET", "http://localhost/api/openapi.json", body=b""))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.get_body()) == document()


def test_the_documented_input_limits_are_the_enforced_ones():
    from shared import openapi, validation
    from shared.export import items

    assert openapi.MAX_URL == validation.MAX_URL
    assert openapi.MAX_TEXT == items.MAX_TEXT
    assert f"{validation.MIN_YEAR}-{validation.MAX_YEAR}" in json.dumps(document())
