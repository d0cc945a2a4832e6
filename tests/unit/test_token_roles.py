"""Reading the `roles` claim of an app-only token, which feeds the integration's tenant-wide-permission warning
(the simulator's tokens are opaque, so the integration tests cannot reach this with a real token)."""

import base64
import json

from shared.identity import TENANT_WIDE_MAILBOX_ROLES, token_roles


def jwt(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_the_roles_of_a_jwt_are_read():
    assert token_roles(jwt({"roles": ["Place.Read.All", "Calendars.ReadWrite"], "tid": "t"})) == [
        "Place.Read.All", "Calendars.ReadWrite"]
    assert set(token_roles(jwt({"roles": ["Calendars.ReadWrite"]}))) <= TENANT_WIDE_MAILBOX_ROLES
    assert "Place.Read.All" not in TENANT_WIDE_MAILBOX_ROLES


def test_anything_else_has_no_roles():
    assert token_roles("opaque-token") == []
    assert token_roles("a.b.c") == []  # not base64 JSON
    assert token_roles(jwt(["not", "an", "object"])) == []
    assert token_roles(jwt({"roles": "Calendars.ReadWrite"})) == []  # not a list
    assert token_roles(jwt({"scp": "Calendars.ReadWrite"})) == []
