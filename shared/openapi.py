"""The OpenAPI 3 description of the host-facing HTTP API, served anonymously at `GET /api/openapi.json`.

Kept as data next to the services whose request and response shapes it describes; a unit test holds it to the
routes `function_app.py` registers (every path and method, both ways, and which ones are anonymous), and the
fuzz test (tests/e2e/test_fuzz.py) sends requests generated from it to the running app.

Pure data and the standard library only: the openapi route must not pull heavy SDKs into a cold start.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

ROUTE_PREFIX = "/api"
OPENAPI_VERSION = "3.0.3"

ACCOUNT_TYPES = ["organizations", "common", "consumers", "single_tenant"]
TITLE_MODES = ["patron_name", "patron_name_email", "public_nickname"]
KINDS = ["user", "space"]
MODES = ["delegated", "app"]
OUTCOMES = ["connected", "wrong_account", "consent_denied", "admin_approval_required", "wrong_account_type",
            "integration_disabled", "flow_expired", "flow_invalid", "credentials_invalid", "authorization_failed"]
ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
GUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAX_TEXT = 4000
MAX_URL = 2048  # shared.validation.MAX_URL (a unit test holds them equal)

JSON = "application/json"
HTML = "text/html"
TEXT = "text/plain"
FORM = "application/x-www-form-urlencoded"
JS = "text/javascript"
CSS = "text/css"
CONSOLE_FILE_PATTERN = "^[a-z0-9-]{1,40}[.](html|js|css)$"  # shared.console.FILE_NAME (a unit test holds them equal)


# --- small builders ------------------------------------------------------------------------------------------------

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def _str(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _identifier(description: str) -> dict[str, Any]:
    return _str(pattern=ID_PATTERN, minLength=1, maxLength=64, description=description)


def _stamp(description: str = "ISO 8601 date-time (UTC)") -> dict[str, Any]:
    return _nullable(_str(format="date-time", description=description))


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "headers": _PAGE_HEADERS,
            "content": {HTML: {"schema": _str(description="a small HTML page showing the outcome")}}}


def _redirect(description: str) -> dict[str, Any]:
    return {"description": description, "headers": {
        "Location": {"description": "where the browser goes next", "schema": _str()}, **_PAGE_HEADERS}}


_CONSOLE_HEADERS = {
    "Content-Security-Policy": {"schema": _str(description="scripts, styles and requests from this origin only")},
    "Cache-Control": {"schema": _str(enum=["no-cache"])},
}
_PAGE_HEADERS = {
    "Cache-Control": {"schema": _str(enum=["no-store"])},
    "Referrer-Policy": {"schema": _str(enum=["no-referrer"])},
}


def _param(name: str, where: str, schema: dict[str, Any], description: str, *, required: bool = False,
           example: Any = None) -> dict[str, Any]:
    param = {"name": name, "in": where, "required": required or where == "path", "description": description,
             "schema": schema}
    if example is not None:
        param["example"] = example
    return param


def _path(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _body(schema: dict[str, Any], *, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"required": True, "content": {JSON: media}}


def _errors(*statuses: int, key: bool = True) -> dict[str, Any]:
    """The error responses of an operation: the shared ones plus `statuses`."""
    text = {
        400: "invalid input: bad JSON (`invalid_json`), a missing or wrong field (`validation_failed`, with "
             "`details.field`), or a specific refusal named by `code`",
        401: "no valid function key (`unauthorized`), or no `x-system-key` (`system_key_required`)",
        403: "the `x-system-key` is not an active key of this system (`system_key_invalid`); changing `client_id`, "
             "`webhook_url`, `allowed_return_origins` or `app_access` without `client_secret` "
             "(`client_secret_required`); Microsoft refuses access to the mailbox (`no_mailbox_access`, with what "
             "an administrator must do; app mode: `mailbox_not_in_scope`, with Graph's code and the Exchange "
             "admin's fix); listing rooms without `Place.Read.All` (`place_permission_missing`)",
        404: "not found: `integration_not_configured`, `connection_not_found`, `not_found`, `export_job_not_found`",
        409: "conflict: `integration_disabled`, `reauthorization_required`, `concurrency_conflict` (retry), "
             "`pull_in_progress`, `app_access_not_enabled`, `app_connections_exist`, `room_discovery_unavailable`",
        413: "the body is over 4 MiB, or what it asks to store is over Table Storage's 1 MiB a row "
             "(`payload_too_large`)",
        415: "the body is not `application/json` (`unsupported_media_type`)",
        422: "the request is well formed but refused (`credentials_invalid` with Microsoft's AADSTS code, "
             "`app_not_in_directory`, `calendar_not_found`, `space_cannot_sync`, `mailbox_not_found`)",
        502: "Microsoft answered with an error (`graph_error`, `token_refused`; `microsoft_code` names it)",
        503: "a dependency (storage, Key Vault, Microsoft) cannot be reached (`dependency_unavailable`)",
    }
    chosen = sorted({400, 503, *statuses, *((401, 403) if key else ())})
    return {str(status): _error(text[status]) for status in chosen}


# --- schemas -------------------------------------------------------------------------------------------------------

def _schemas() -> dict[str, Any]:
    occurrence = _obj({
        "key": _identifier("the host's stable key of this date/time slot; one Outlook event per key"),
        "start": _str(description="local wall-clock ISO date-time in `time_zone` (an offset, if given, is "
                                  "converted); a time skipped by a DST change is refused, one that happens twice "
                                  "means the first; required unless `all_day`",
                      example="2030-03-29T09:00:00"),
        "end": _str(description="after start, at most 31 days later; required unless `all_day`",
                    example="2030-03-29T10:30:00"),
        "time_zone": _str(description="IANA time zone; sent to Outlook as the Windows zone CLDR maps it to, or as "
                                      "UTC when there is none", example="Europe/London"),
        "all_day": {"type": "boolean", "default": False,
                    "description": "whole days in `time_zone`: give `start_date` and `end_date` instead of start/end"},
        "start_date": _str(format="date", description="all-day: the first day", example="2030-03-29"),
        "end_date": _str(format="date", description="all-day: the day after the last (exclusive, as Graph's)",
                         example="2030-03-30"),
    }, ["key", "time_zone"])
    item_fields: dict[str, Any] = {
        "occurrences": {"type": "array", "maxItems": 500, "items": _ref("Occurrence"),
                        "description": "every date/time of the item; an occurrence left out is deleted from Outlook"},
        "title": _nullable(_str(maxLength=MAX_TEXT, description="the event title for shifts (user connections)")),
        "patron": _nullable(_obj({
            "first_name": _nullable(_str(maxLength=MAX_TEXT)),
            "last_name": _nullable(_str(maxLength=MAX_TEXT)),
            "email": _nullable(_str(maxLength=MAX_TEXT)),
        }, description="who booked (spaces); used in titles per the location's `title_mode`")),
        "public_nickname": _nullable(_str(maxLength=MAX_TEXT)),
        "nicknames_enabled": {"type": "boolean", "default": True},
        "location": _nullable(_identifier("the host's location ID, whose settings choose the title mode")),
        "location_text": _nullable(_str(maxLength=MAX_TEXT, description="the event's location text")),
        "notes": _nullable(_str(maxLength=MAX_TEXT, description="the event body")),
    }
    error_fields = {"microsoft_code": _nullable(_str()), "message": _nullable(_str())}
    return {
        "Error": _obj({
            "error": _obj({
                "code": _str(description="stable machine-readable code, e.g. `validation_failed`"),
                "message": _str(description="what is wrong, safe to show; never a secret or a stack trace"),
                "microsoft_code": _str(description="Microsoft's own code when it gave one (AADSTS number or Graph "
                                                   "error code)"),
                "details": _obj({"field": _str(description="the request field at fault")},
                                additionalProperties=True),
            }, ["code", "message"], additionalProperties=False),
        }, ["error"], additionalProperties=False,
            example={"error": {"code": "validation_failed", "message": "client_id: is required",
                               "details": {"field": "client_id"}}}),
        "Health": _obj({
            "status": _str(enum=["healthy", "unhealthy"]),
            "checks": {"type": "object", "description": "per dependency (`storage`, `key_vault`)",
                       "additionalProperties": _obj({"ok": {"type": "boolean"}, "ms": {"type": "number"}},
                                                    ["ok"])},
            "error": _ref("ErrorDetail"),
        }, ["status", "checks"]),
        "ErrorDetail": _obj({"code": _str(), "message": _str()}, ["code", "message"],
                            description="present when unhealthy: `dependency_unavailable` naming what is down"),
        "IntegrationSettings": _obj({
            "client_id": _str(pattern=GUID_PATTERN, description="Application (client) ID"),
            "client_secret": _str(minLength=1, maxLength=1024, writeOnly=True,
                                  description="the secret's Value; required the first time, kept when omitted. "
                                              "Stored in Key Vault and never returned"),
            "account_type": _str(enum=ACCOUNT_TYPES, description="the registration's supported account types"),
            "tenant_id": _nullable(_str(description="Directory (tenant) ID GUID or a verified domain; required "
                                                    "for `single_tenant`, recommended otherwise")),
            "enabled": {"type": "boolean", "default": True,
                        "description": "false stops all syncing and refuses new authorizations"},
            "allowed_return_origins": {"type": "array", "maxItems": 20,
                                       "items": _str(maxLength=MAX_URL, example=RETURN_ORIGIN),
                                       "description": "origins (`https://host[:port]`; http only for localhost) "
                                                      "that `return_url` may use"},
            "client_secret_expires_on": _nullable(_str(description="ISO date or date-time with offset, in years "
                                                                   "1900-2999: alerts warn 30 and 7 days before")),
            "webhook_url": _nullable(_str(maxLength=MAX_URL, description=(
                "https URL the feed's changes are POSTed to, signed. Refused (400) when its host resolves to a "
                "loopback, private, link-local, CGNAT or other internal address; a query is kept in Key Vault and "
                "shown as `?<redacted>`, and sending that shown URL back keeps the stored one"))),
            "webhook_secret": _str(minLength=32, maxLength=512, writeOnly=True,
                                   description="the HMAC-SHA256 signing secret for webhook deliveries, chosen by "
                                               "the host (printable, no surrounding spaces); required the first "
                                               "time `webhook_url` is set, kept when omitted, only accepted with "
                                               "`webhook_url`. Stored in Key Vault and never returned"),
            "app_access": _obj({
                "enabled": {"type": "boolean", "default": True},
                "tenant_id": _nullable(_str(description=(
                    "the directory (tenant) ID or verified domain whose rooms are synced; client credentials need "
                    "one directory, so `common`/`organizations`/`consumers` are refused. Required for "
                    "`organizations`/`common` apps without `tenant_id`; a `single_tenant` app uses its own"))),
            }, additionalProperties=False, description=(
                "app-only access (client credentials) for space connections in app mode, limited by an Exchange "
                "RBAC-for-Applications scope. Checked with one token request to that directory on save (422 "
                "`app_not_in_directory` when nobody there consented to the app). Kept when omitted; turning it "
                "on or moving it needs `client_secret`; turning it off or moving it is refused (409 "
                "`app_connections_exist`) while app-mode connections use it")),
            "room_discovery": _obj({
                "delegated": {"type": "boolean", "description": (
                    "space sign-ins also ask for the delegated `Place.Read.All` (it needs admin consent), so "
                    "`GET .../rooms?via=space/{id}` works")},
            }, ["delegated"], additionalProperties=False, description="kept when omitted"),
        }, ["client_id", "account_type"], description="Create or replace a system's integration. The credentials "
                                                      "are checked against Microsoft before anything is saved."),
        "Integration": _obj({
            "system": _str(),
            "configured": {"type": "boolean", "enum": [True]},
            "client_id": _str(),
            "account_type": _str(enum=ACCOUNT_TYPES),
            "tenant_id": _nullable(_str()),
            "enabled": {"type": "boolean"},
            "allowed_return_origins": {"type": "array", "items": _str()},
            "client_secret": _obj({
                "set": {"type": "boolean"},
                "hint": _str(description="the secret's first characters"),
                "expires_on": _stamp("the recorded expiry"),
                "days_left": _nullable({"type": "integer"}),
            }, ["set"]),
            "credentials": _obj({
                "ok": _nullable({"type": "boolean"}),
                "microsoft_code": _nullable(_str()),
                "checked_at": _stamp(),
            }),
            "webhook_url": _nullable(_str(description="the webhook URL, its query (if any) shown as `?<redacted>`")),
            "webhook": _obj({"url": _nullable(_str()), "secret_set": {"type": "boolean"}}),
            "redirect_uri": _str(description="the redirect URI to register (platform Web)"),
            "sign_in": _obj({
                "authority": _str(description="where people sign in: /{tenant ID} for `single_tenant`, else "
                                              "/organizations, /common or /consumers"),
                "accounts": {"type": "array", "items": _str(enum=["work_or_school", "personal"])},
                "description": _str(description="the same, in words to show people before they sign in"),
            }, ["authority", "accounts"], description="which kinds of account can sign in; any other gets "
                                                      "Microsoft's error page, which never returns to the app"),
            "app_access": _obj({
                "enabled": {"type": "boolean"},
                "tenant_id": _nullable(_str()),
                "authority": _nullable(_str(description="where app-only tokens are requested")),
                "scope": _str(description="what they ask for: Graph's `.default`"),
                "warning": _nullable(_str(description=(
                    "set when the app token carries a tenant-wide mailbox permission (e.g. `Calendars.ReadWrite` "
                    "granted in Entra ID), which opens every mailbox whatever the Exchange scope says"))),
            }, ["enabled"]),
            "room_discovery": _obj({"delegated": {"type": "boolean"},
                                    "delegated_scope": _str(enum=["Place.Read.All"])}, ["delegated"]),
            "note": _str(),
            "updated_at": _stamp(),
        }, ["system", "configured", "client_id", "account_type", "enabled", "client_secret", "redirect_uri"]),
        "IntegrationNotConfigured": _obj({
            "system": _str(),
            "configured": {"type": "boolean", "enum": [False]},
            "redirect_uri": _str(description="the redirect URI to register (platform Web)"),
        }, ["system", "configured", "redirect_uri"]),
        "LocationSettings": _obj({
            "title_mode": _str(enum=TITLE_MODES, description="how space events are titled"),
            "populate_creator": {"type": "boolean", "default": False,
                                 "description": "publish creator name and email of external events"},
        }, ["title_mode"]),
        "Location": _obj({
            "system": _str(), "location": _str(), "title_mode": _str(enum=TITLE_MODES),
            "populate_creator": {"type": "boolean"}, "populate_creator_since": _stamp(), "updated_at": _stamp(),
        }, ["system", "location", "title_mode", "populate_creator"]),
        "AuthorizeRequest": _obj({
            "return_url": _str(maxLength=MAX_URL,
                               description="where the browser is sent back with `outcome`; its origin must be in "
                                           "`allowed_return_origins`", example=f"{RETURN_ORIGIN}/outlook/done"),
            "space_type": _nullable(_str(description="`container_space_with_seats` cannot be synced (422)")),
            "login_hint": _nullable(_str(maxLength=256,
                                         description="the account to suggest on Microsoft's sign-in page (a hint "
                                                     "only; must equal `expected_account` when both are sent)")),
            "expected_account": _nullable(_str(maxLength=254, description=(
                "the only account this sign-in may connect: its UPN or email, compared case-insensitively with "
                "the ID token's `preferred_username`, `upn` and `email`; suggested to Microsoft as `login_hint`. "
                "Any other account ends in `wrong_account` and nothing is stored"))),
            "replace_account": {"type": "boolean", "default": False, "description": (
                "let a different Microsoft account replace the one already connected (its calendar choices are "
                "cleared); without it a re-authorization by another account ends in `wrong_account`")},
        }, ["return_url"]),
        "AuthorizeStarted": _obj({
            "authorize_url": _str(description="send the browser of the person connecting here. A bearer link: "
                                              "whoever opens it first (within `expires_at`) completes the sign-in, "
                                              "once; never send it by email or chat"),
            "expires_at": _str(format="date-time"),
        }, ["authorize_url", "expires_at"]),
        "Connection": _obj({
            "system": _str(), "kind": _str(enum=KINDS), "id": _str(),
            "mode": _str(enum=MODES, description="`delegated`: a person's sign-in; `app`: a room reached with the "
                                                 "app's own scoped access, nobody signed in"),
            "status": _str(enum=["connected", "reauthorization_required", "access_denied", "disabled"],
                           description="`access_denied` (app mode): Microsoft Graph refuses the room, e.g. it left "
                                       "the Exchange management scope; it clears by itself once access works"),
            "account": _nullable(_obj({"username": _str(), "name": _str(), "object_id": _str(),
                                       "tenant_id": _str()}, description="the signed-in account; null in app mode")),
            "sync_resource": _str(description="the mailbox events are written to"),
            "sync_calendar_id": _nullable(_str()),
            "freebusy_calendar_id": _nullable(_str(description="users only")),
            "location": _nullable(_str(description="spaces only")),
            "two_way": {"type": "boolean", "description": "spaces only"},
            "authorized_at": _stamp(), "token_refreshed_at": _stamp(),
            "last_error": _nullable(_obj({"microsoft_code": _nullable(_str()), "message": _nullable(_str()),
                                          "at": _stamp()})),
            "next_step": _str(description="what the host should do next, when something is missing"),
        }, ["system", "kind", "id", "mode", "status", "account", "sync_resource"]),
        "AppConnection": _obj({
            "mode": _str(enum=["app"]),
            "sync_resource": _str(maxLength=254, description="the room mailbox's address",
                                  example="room-101@contoso.org"),
            "sync_calendar_id": _nullable(_str(maxLength=1024, description="a writable calendar of the room; its "
                                                                           "default calendar when left out")),
            "location": _nullable(_identifier("the host's location ID")),
            "two_way": {"type": "boolean", "default": False, "description": "publish Outlook-side bookings"},
            "space_type": _nullable(_str(description="`container_space_with_seats` cannot be synced (422)")),
        }, ["mode", "sync_resource"], additionalProperties=False, description=(
            "Create or replace a space connection in app mode: no sign-in. One Graph call with the app's token "
            "checks the room (its calendars) before anything is stored: 403 `mailbox_not_in_scope` with Graph's "
            "code and the Exchange admin's fix when the scope does not cover it, 422 `mailbox_not_found`, 409 "
            "`app_access_not_enabled`. Replacing a delegated connection erases its tokens.")),
        "Rooms": _obj({
            "system": _str(), "mode": _str(enum=MODES), "via": _nullable(_str()), "room_list": _nullable(_str()),
            "rooms": {"type": "array", "items": _obj({
                "address": _str(), "display_name": _nullable(_str()), "capacity": _nullable({"type": "integer"}),
                "building": _nullable(_str()), "floor": _nullable({"type": "integer"}),
                "floor_label": _nullable(_str()),
            }, ["address"])},
            "count": {"type": "integer"},
            "truncated": {"type": "boolean", "description": "more than 5,000 rooms: the first 5,000 are listed"},
        }, ["system", "mode", "rooms", "count", "truncated"]),
        "RoomLists": _obj({
            "system": _str(), "mode": _str(enum=MODES), "via": _nullable(_str()),
            "room_lists": {"type": "array", "items": _obj({"address": _str(), "display_name": _nullable(_str())},
                                                          ["address"])},
            "count": {"type": "integer"}, "truncated": {"type": "boolean"},
        }, ["system", "mode", "room_lists", "count", "truncated"]),
        "ConnectionChoices": _obj({
            "sync_resource": _nullable(_str(description="mailbox address to write to (a room delegated to the "
                                                        "signed-in account); empty for the account's own")),
            "sync_calendar_id": _nullable(_str(maxLength=1024, description="a writable calendar of the sync resource")),
            "freebusy_calendar_id": _nullable(_str(maxLength=1024,
                                                   description="users only: the calendar free/busy reads")),
            "location": _nullable(_identifier("spaces only: the host's location ID")),
            "two_way": {"type": "boolean", "description": "spaces only: publish Outlook-side bookings"},
        }, additionalProperties=False, description="Only the fields sent change; a field of the other kind is "
                                                   "refused (400)."),
        "ConnectionList": _obj({
            "system": _str(),
            "connections": {"type": "array", "items": _ref("Connection")},
            "next_cursor": _nullable(_str(description="pass as `cursor` to read the next page; null on the last")),
            "more": {"type": "boolean"},
        }, ["system", "connections", "next_cursor", "more"]),
        "ConnectionRemoved": _obj({"removed": {"type": "boolean"}, "events_removed": {"type": "integer"}},
                                  ["removed", "events_removed"]),
        "Calendars": _obj({
            "sync_resource": _str(),
            "calendars": {"type": "array", "items": _obj({
                "id": _str(), "name": _nullable(_str()), "can_edit": {"type": "boolean"},
                "is_default": {"type": "boolean"}, "owner": _nullable(_str()),
            }, ["id", "can_edit", "is_default"])},
        }, ["sync_resource", "calendars"]),
        "Occurrence": occurrence,
        "Item": _obj(item_fields, ["occurrences"], description="a booking (space) or shift (user)"),
        "ExportItem": _obj({"item": _identifier("the item ID"), **item_fields}, ["item", "occurrences"]),
        "ItemState": _obj({
            "item": _str(),
            "occurrences": {"type": "array", "items": _obj({
                "key": _str(), "start": _str(), "end": _str(), "time_zone": _str(),
                "all_day": {"type": "boolean"}, "start_date": _str(format="date"), "end_date": _str(format="date"),
                "sync_id": _nullable(_str(description="the Outlook event ID")),
                "state": _str(description="`synced`, `pending` (retried later) or `failed`"),
                "error": _obj({"microsoft_code": _nullable(_str()), "message": _nullable(_str())}),
            }, ["key", "start", "end", "time_zone", "sync_id", "state"])},
            "updated_at": _stamp(),
            "reason": _str(description="why occurrences are still pending"),
        }, ["item", "occurrences"]),
        "ItemCancelled": _obj({
            "item": _str(),
            "state": _str(enum=["cancelled", "pending"]),
            "deleted_events": {"type": "integer"},
            "failed": {"type": "array", "items": _obj({"key": _str(), "sync_id": _nullable(_str()),
                                                       "state": _str(), "error": _obj(error_fields)})},
            "reason": _str(),
        }, ["item", "state"]),
        "ExportRequest": _obj({
            "mode": _str(enum=["not_exported", "all"], description="`all` re-asserts every event without "
                                                                   "duplicates"),
            "items": {"type": "array", "minItems": 1, "items": _ref("ExportItem"),
                      "description": "future items; at most 20,000 occurrences per job"},
        }, ["mode", "items"]),
        "ExportJob": _obj({
            "job": _str(), "mode": _str(enum=["not_exported", "all"]),
            "state": _str(enum=["queued", "running", "completed", "completed_with_failures"]),
            "total": {"type": "integer"}, "done": {"type": "integer"}, "failed": {"type": "integer"},
            "retrying": {"type": "integer"}, "pending": {"type": "integer"},
            "failures": {"type": "array", "items": _obj({"item": _str(), "occurrence": _str(),
                                                         "microsoft_code": _str(), "message": _str()})},
            "created_at": _stamp(),
        }, ["job", "mode", "state", "total", "done", "failed", "retrying", "pending", "failures"]),
        "ExportJobs": _obj({"jobs": {"type": "array", "items": _obj({
            "job": _str(), "mode": _str(), "total": {"type": "integer"}, "state": _str(),
            "created_at": _stamp(), "completed_at": _stamp(),
        }, ["job", "mode", "total", "state"])}}, ["jobs"]),
        "FreeBusy": _obj({
            "id": _str(), "calendar_id": _nullable(_str()), "start": _str(), "end": _str(),
            "busy": {"type": "array", "items": _obj({
                "start": _str(), "end": _str(),
                "status": _str(enum=["busy", "tentative", "out_of_office", "working_elsewhere"]),
            }, ["start", "end", "status"])},
        }, ["id", "start", "end", "busy"]),
        "ExternalEvents": _obj({
            "system": _str(), "id": _str(),
            "changes": {"type": "array", "items": _ref("FeedEntry")},
            "next_cursor": _str(description="pass as `cursor` to read on"),
            "more": {"type": "boolean"},
        }, ["system", "id", "changes", "next_cursor", "more"]),
        "FeedEntry": _obj({
            "id": _str(description="`system:space:seq`, unique"), "seq": {"type": "integer"},
            "type": _str(description="`created`, `updated`, `removed`, or a change to one of the product's own "
                                     "events made in Outlook"),
            "event_id": _str(), "event": _nullable(_obj({
                "subject": _str(), "start": _str(description="UTC instant"), "end": _str(description="UTC instant"),
                "is_all_day": {"type": "boolean"},
                "time_zone": _str(description="IANA zone the event was made in (Outlook's originalStartTimeZone)"),
                "start_date": _str(format="date", description="all-day: first day, in the event's zone"),
                "end_date": _str(format="date", description="all-day: the day after the last (exclusive)"),
                "time_zone_assumed": _str(description="all-day with a zone no table knows: dates placed in this"),
                "conflict": {"type": "boolean"},
            })), "published_at": _stamp(),
        }, ["id", "seq", "type", "event_id"]),
        "Backfilled": _obj({"updated": {"type": "integer"}}, ["updated"]),
        "Alerts": _obj({"system": _str(), "alerts": {"type": "array", "items": _obj({
            "type": _str(description="`reauthorization_required`, `credentials_invalid`, `client_secret_expiring`, "
                                     "`client_secret_expired`, `repeated_failures`, `webhook_failing`, "
                                     "`app_access_denied` (an app-mode room Graph refuses; the message names the "
                                     "room, Graph's error and the Exchange admin's fix)"),
            "subject": _str(), "message": _str(), "microsoft_code": _nullable(_str()),
            "status": _str(enum=["open", "resolved"]),
            "raised_at": _str(), "last_seen_at": _str(), "resolved_at": _stamp(),
            "occurrences": {"type": "integer"},
        }, ["type", "subject", "message", "status", "raised_at", "last_seen_at", "occurrences"])}},
            ["system", "alerts"]),
        "SystemKeyIssued": _obj({
            "system": _str(),
            "key_id": _str(description="names the key, e.g. to revoke it; not a secret"),
            "key": _str(description="the system key, `sk_<key_id>_<secret>`: shown once, only its SHA-256 is "
                                    "stored"),
            "created_at": _str(format="date-time"),
            "header": _str(enum=["x-system-key"]),
            "note": _str(),
        }, ["system", "key_id", "key", "created_at"]),
        "SystemKeys": _obj({
            "system": _str(), "created_at": _stamp(),
            "keys": {"type": "array", "maxItems": 2, "items": _obj({"key_id": _str(), "created_at": _str()},
                                                                   ["key_id", "created_at"])},
        }, ["system", "keys"]),
        "SystemKeyRevoked": _obj({"system": _str(), "key_id": _str(), "revoked": {"type": "boolean"},
                                  "active_keys": {"type": "integer"}}, ["system", "key_id", "revoked"]),
        "CallbackForm": _obj({
            "state": _str(), "code": _str(), "error": _str(), "error_description": _str(),
            "error_codes": _str(), "error_uri": _str(), "session_state": _str(), "id_token": _str(),
        }, description="what Microsoft posts (response_mode=form_post); only a state this app issued is trusted"),
        "ChangeNotification": _obj({
            "subscriptionId": _str(maxLength=64, description="the Graph subscription it is about"),
            "clientState": _str(maxLength=255, description="the subscription's secret; a mismatch is ignored"),
            "changeType": _str(enum=["created", "updated", "deleted"],
                               description="a change notification (or `lifecycleEvent`, never both)"),
            "lifecycleEvent": _str(enum=["reauthorizationRequired", "subscriptionRemoved", "missed"],
                                   description="a lifecycle notification"),
            "subscriptionExpirationDateTime": _str(), "tenantId": _str(), "resource": _str(),
            "resourceData": {"type": "object", "additionalProperties": True},
        }, ["subscriptionId", "clientState"], additionalProperties=True),
        "ChangeNotificationCollection": _obj({
            "value": {"type": "array", "items": _ref("ChangeNotification")},
            "validationTokens": {"type": "array", "items": _str()},
        }, ["value"], description="what Microsoft Graph posts (changeNotificationCollection)",
            additionalProperties=True),
    }


RETURN_ORIGIN = "https://booking.example.edu"
OCCURRENCE_EXAMPLE = {"key": "2030-06-03", "start": "2030-06-03T09:00:00", "end": "2030-06-03T10:30:00",
                      "time_zone": "Europe/London"}


# --- paths ---------------------------------------------------------------------------------------------------------

def _paths() -> dict[str, Any]:
    connection = "/systems/{system}/connections/{kind}/{id}"
    ids = [_path("system"), _path("kind"), _path("id")]
    space_ids = [_path("system"), _path("spaceId")]
    user_ids = [_path("system"), _path("userId")]
    anonymous: list[dict[str, list[str]]] = []
    operator = [{"masterKey": []}, {"masterKeyQuery": []}]
    outcome_redirect = ("to the host's `return_url` with `outcome` (and `kind`, `id`, `microsoft_code`, the "
                        "signed-in `account`, and for `wrong_account` the `expected_account`) in its query "
                        "string; those names are first removed from the return URL's own query")
    paths: dict[str, Any] = {
        "/health": {"get": {
            "operationId": "health", "tags": ["operations"], "security": anonymous,
            "summary": "Liveness and dependency checks (anonymous)",
            "responses": {"200": _json(_ref("Health"), "storage and Key Vault answer"),
                          "503": _json(_ref("Health"), "something is down: `error` names it")},
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi", "tags": ["operations"], "security": anonymous,
            "summary": "This description (anonymous)",
            "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
        }},
        **{f"/notifications/{name}": {"post": {
            "operationId": operation, "tags": ["change notifications (Microsoft Graph)"], "security": anonymous,
            "summary": f"Microsoft Graph posts {what} here (anonymous): a subscription's {field}",
            "description": (
                "Called by Microsoft Graph, not by the host. With `validationToken` (the handshake when a "
                "subscription is created) it echoes the token as text/plain. Otherwise each notification whose "
                "`clientState` matches its subscription queues a pull of that room (coalesced) or, for a lifecycle "
                "event, renews or recreates the subscription; the others are ignored and counted. Both URLs take "
                "both kinds of notification."),
            "parameters": [_param("validationToken", "query", _str(maxLength=1024),
                                  "Graph's validation handshake: answered 200 text/plain with the token")],
            "requestBody": {"required": False, "content": {JSON: {"schema": _ref("ChangeNotificationCollection")}}},
            "responses": {
                "200": {"description": "the validation token, echoed (printable ASCII without markup, at most "
                                       "1,024 characters)",
                        "content": {TEXT: {"schema": _str(maxLength=1024)}}},
                "202": {"description": "accepted: notifications that check out are queued, the others ignored"},
                "400": _error("not a notification collection (`invalid_json`, `validation_failed`), or a "
                              "validation token that is not plain text (`validation_failed`)"),
                "413": _error("over 1 MiB (`payload_too_large`)"),
                "415": _error("not JSON (`unsupported_media_type`)"),
                "503": _error("storage cannot be reached (`dependency_unavailable`): Graph delivers again"),
            },
        }} for name, operation, what, field in (
            ("changes", "graphChangeNotifications", "change notifications", "`notificationUrl`"),
            ("lifecycle", "graphLifecycleNotifications", "lifecycle notifications",
             "`lifecycleNotificationUrl`"))},
        "/console": {"get": {
            "operationId": "console", "tags": ["console"], "security": anonymous,
            "summary": "The admin console's page (anonymous; off unless CONSOLE_ENABLED). It holds no secret: it "
                       "calls this API with the function key and system key an admin pastes in",
            "responses": {"200": {"description": "the console's HTML page", "headers": _CONSOLE_HEADERS,
                                  "content": {HTML: {"schema": _str()}}},
                          "404": _error("the console is off (`not_found`)")},
        }},
        "/console/{file}": {"get": {
            "operationId": "consoleAsset", "tags": ["console"], "security": anonymous,
            "summary": "A static file of the admin console: its scripts and style sheet (anonymous)",
            "parameters": [_param("file", "path", _str(pattern=CONSOLE_FILE_PATTERN), "the file's name",
                                  example="app.js")],
            "responses": {"200": {"description": "the file", "headers": _CONSOLE_HEADERS,
                                  "content": {media: {"schema": _str()} for media in (HTML, JS, CSS)}},
                          "404": _error("the console is off, or it has no such file (`not_found`)")},
        }},
        "/systems/{system}": {
            "parameters": [_path("system")],
            "post": {
                "operationId": "createSystem", "tags": ["operator"], "security": operator,
                "summary": "Create a system and its first key, answered once (operator: master key)",
                "responses": {"201": _json(_ref("SystemKeyIssued"), "created; give `key` to the system's host"),
                              **_operator_errors(409)},
            },
        },
        "/systems/{system}/keys": {
            "parameters": [_path("system")],
            "get": {
                "operationId": "listSystemKeys", "tags": ["operator"], "security": operator,
                "summary": "The system's active keys: IDs and creation times, never a key (operator)",
                "responses": {"200": _json(_ref("SystemKeys"), "the active keys"), **_operator_errors(404)},
            },
            "post": {
                "operationId": "addSystemKey", "tags": ["operator"], "security": operator,
                "summary": "Rotation: a second active key, answered once; 409 when two are active (operator)",
                "responses": {"201": _json(_ref("SystemKeyIssued"), "the new key"), **_operator_errors(404, 409)},
            },
        },
        "/systems/{system}/keys/{key_id}": {
            "parameters": [_path("system"), _path("keyId")],
            "delete": {
                "operationId": "revokeSystemKey", "tags": ["operator"], "security": operator,
                "summary": "Revoke a key: refused within seconds on every instance (operator)",
                "responses": {"200": _json(_ref("SystemKeyRevoked"), "revoked"), **_operator_errors(404, 409)},
            },
        },
        "/systems/{system}/integration": {
            "parameters": [_path("system")],
            "get": {
                "operationId": "getIntegration", "tags": ["integration"],
                "summary": "The integration settings, or `configured: false` and the redirect URI to register",
                "responses": {"200": _json({"oneOf": [_ref("Integration"), _ref("IntegrationNotConfigured")]},
                                           "the settings (never the secrets)"), **_errors()},
            },
            "put": {
                "operationId": "putIntegration", "tags": ["integration"],
                "summary": "Save the app registration; the credentials are validated against Microsoft first",
                "description": "A wrong secret answers 422 `credentials_invalid` with `AADSTS7000215`, an expired "
                               "one `AADSTS7000222`, an unknown application `AADSTS700016`; nothing is saved then. "
                               "Changing `client_id`, `webhook_url` or `allowed_return_origins` of a saved "
                               "integration needs `client_secret` in the same request (403 "
                               "`client_secret_required` otherwise).",
                "requestBody": _body(_ref("IntegrationSettings"), examples={"single tenant": {
                    "client_id": "00000000-0000-0000-0000-000000000000", "client_secret": "secret-value",  # nosec B105 - a documentation example
                    "account_type": "single_tenant", "tenant_id": "contoso.onmicrosoft.com", "enabled": True,
                    "allowed_return_origins": [RETURN_ORIGIN], "client_secret_expires_on": "2030-11-30",  # nosec B105
                }}),
                "responses": {"200": _json(_ref("Integration"), "replaced"),
                              "201": _json(_ref("Integration"), "created"),
                              **_errors(409, 413, 415, 422, 502)},
            },
        },
        "/systems/{system}/locations/{location}": {
            "parameters": [_path("system"), _path("location")],
            "get": {
                "operationId": "getLocation", "tags": ["integration"],
                "summary": "A location's settings (defaults when none were saved)",
                "responses": {"200": _json(_ref("Location"), "the settings"), **_errors()},
            },
            "put": {
                "operationId": "putLocation", "tags": ["integration"],
                "summary": "Event title mode and the populate-creator switch for a location's spaces",
                "requestBody": _body(_ref("LocationSettings"), examples={
                    "nickname": {"title_mode": "public_nickname", "populate_creator": True}}),
                "responses": {"200": _json(_ref("Location"), "saved"), **_errors(409, 413, 415)},
            },
        },
        f"{connection}/authorize": {
            "parameters": ids,
            "post": {
                "operationId": "authorize", "tags": ["connections"],
                "summary": "Start an authorization: answers the URL to send the browser to (single use, 10 min)",
                "requestBody": _body(_ref("AuthorizeRequest"), examples={
                    "room": {"return_url": f"{RETURN_ORIGIN}/outlook/done", "space_type": "room"}}),
                "responses": {"201": _json(_ref("AuthorizeStarted"), "started"),
                              **_errors(404, 409, 413, 415, 422, 502)},
            },
        },
        "/oauth/start": {"get": {
            "operationId": "oauthStart", "tags": ["oauth (browser)"], "security": anonymous,
            "summary": "Sends the browser to Microsoft for a pending flow (anonymous)",
            "parameters": [_param("state", "query", _str(), "the state from `authorize_url`")],
            "responses": {"302": _redirect(f"to Microsoft's sign-in page; or, for an expired flow, {outcome_redirect}"),
                          "400": _html("no such pending flow (`flow_invalid`): a readable page")},
        }},
        "/oauth/callback": {
            "get": {
                "operationId": "oauthCallbackGet", "tags": ["oauth (browser)"], "security": anonymous,
                "summary": "The redirect URI registered with Microsoft, query-string response (anonymous)",
                "parameters": [_param(n, "query", _str(), f"from Microsoft: `{n}`")
                               for n in ("state", "code", "error", "error_description", "error_codes")],
                "responses": _callback_responses(outcome_redirect),
            },
            "post": {
                "operationId": "oauthCallbackPost", "tags": ["oauth (browser)"], "security": anonymous,
                "summary": "The redirect URI registered with Microsoft, form_post response (anonymous)",
                "requestBody": {"required": True, "content": {FORM: {"schema": _ref("CallbackForm")}}},
                "responses": _callback_responses(outcome_redirect),
            },
        },
        "/oauth/result": {"get": {
            "operationId": "oauthResult", "tags": ["oauth (browser)"], "security": anonymous,
            "summary": "A plain landing page showing an outcome, for hosts without their own (anonymous)",
            "parameters": [_param("outcome", "query", _str(enum=OUTCOMES), "the callback's outcome"),
                           _param("kind", "query", _str(), "passed through, not shown"),
                           _param("id", "query", _str(), "passed through, not shown"),
                           _param("microsoft_code", "query", _str(), "passed through, not shown"),
                           _param("account", "query", _str(), "the signed-in account, named for `wrong_account`"),
                           _param("expected_account", "query", _str(), "named for `wrong_account`")],
            "responses": {"200": _html("`connected`"), "400": _html("any other outcome, or an unknown one")},
        }},
        "/systems/{system}/connections": {
            "parameters": [_path("system")],
            "get": {
                "operationId": "listConnections", "tags": ["connections"],
                "summary": "The system's connections with their health (status, last Microsoft error), a page at a "
                           "time: spaces, then users, each in ID order",
                "parameters": [
                    _param("kind", "query", _str(enum=KINDS), "only connections of this kind"),
                    _param("cursor", "query", _str(maxLength=70), "`next_cursor` of the previous page"),
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200},
                           "page size (default 50)", example=50),
                ],
                "responses": {"200": _json(_ref("ConnectionList"), "a page of connections"), **_errors()},
            },
        },
        connection: {
            "parameters": ids,
            "get": {
                "operationId": "getConnection", "tags": ["connections"], "summary": "The connection's status",
                "responses": {"200": _json(_ref("Connection"), "the connection"), **_errors(404)},
            },
            "put": {
                "operationId": "putAppConnection", "tags": ["connections"],
                "summary": "App mode: connect a space to a room mailbox without a sign-in (spaces only)",
                "requestBody": _body(_ref("AppConnection"), examples={
                    "room": {"mode": "app", "sync_resource": "room-101@contoso.org", "location": "main",
                             "two_way": True, "space_type": "room"}}),
                "responses": {"201": _json(_ref("Connection"), "created"),
                              "200": _json(_ref("Connection"), "replaced (a delegated connection's tokens erased)"),
                              **_errors(403, 404, 409, 413, 415, 422, 502)},
            },
            "patch": {
                "operationId": "patchConnection", "tags": ["connections"],
                "summary": "Choose the sync resource and calendars (users: free/busy calendar; spaces: location, "
                           "two-way); calendars are checked against the mailbox",
                "requestBody": _body(_ref("ConnectionChoices"), examples={
                    "room": {"sync_resource": "room-101@contoso.org", "location": "main", "two_way": True}}),
                "responses": {"200": _json(_ref("Connection"), "saved"),
                              **_errors(403, 404, 409, 413, 415, 422, 502)},
            },
            "delete": {
                "operationId": "deleteConnection", "tags": ["connections"],
                "summary": "Remove the authorization (tokens erased); events stay unless `remove_events=true`",
                "parameters": [_param("remove_events", "query", _str(enum=["true", "false"]),
                                      "also delete the events this product created", example="false")],
                "responses": {"200": _json(_ref("ConnectionRemoved"), "removed"), **_errors(404, 409, 502)},
            },
        },
        f"{connection}/calendars": {
            "parameters": ids,
            "get": {
                "operationId": "listCalendars", "tags": ["connections"],
                "summary": "The sync resource's calendars, for the host's dropdown",
                "responses": {"200": _json(_ref("Calendars"), "the calendars"), **_errors(403, 404, 409, 502)},
            },
        },
        f"{connection}/items/{{item}}": {
            "parameters": [*ids, _path("item")],
            "put": {
                "operationId": "putItem", "tags": ["export"],
                "summary": "Upsert a booking or shift: one Outlook event per occurrence; answers the sync IDs",
                "requestBody": _body(_ref("Item"), examples={"booking": {
                    "occurrences": [OCCURRENCE_EXAMPLE], "patron": {"first_name": "Ada", "last_name": "Lovelace",
                                                                    "email": "ada@example.edu"},
                    "public_nickname": "Ada", "location": "main", "notes": "Projector needed"}}),
                "responses": {"200": _json(_ref("ItemState"), "every occurrence is in Outlook"),
                              "202": _json(_ref("ItemState"), "stored; some occurrences are retried later"),
                              **_errors(404, 409, 413, 415)},
            },
            "get": {
                "operationId": "getItem", "tags": ["export"], "summary": "The item's occurrences and sync IDs",
                "responses": {"200": _json(_ref("ItemState"), "the item"), **_errors(404)},
            },
            "delete": {
                "operationId": "cancelItem", "tags": ["export"],
                "summary": "Cancel: delete the item's events (already gone counts as done), then forget it",
                "responses": {"200": _json(_ref("ItemCancelled"), "cancelled, or pending when Outlook cannot "
                                                                   "be reached now"), **_errors(404, 409)},
            },
        },
        f"{connection}/exports": {
            "parameters": ids,
            "post": {
                "operationId": "startExport", "tags": ["export"],
                "summary": "Bulk export of future items as a job: `not_exported` or `all` (no duplicates)",
                "requestBody": _body(_ref("ExportRequest"), examples={"all": {
                    "mode": "all", "items": [{"item": "b-1", "occurrences": [OCCURRENCE_EXAMPLE],
                                              "title": "Early shift"}]}}),
                "responses": {"202": _json(_ref("ExportJob"), "queued"), **_errors(404, 409, 413, 415)},
            },
            "get": {
                "operationId": "listExports", "tags": ["export"], "summary": "The connection's latest 50 jobs",
                "responses": {"200": _json(_ref("ExportJobs"), "the jobs, newest first"), **_errors(404)},
            },
        },
        f"{connection}/exports/{{job}}": {
            "parameters": [*ids, _path("job")],
            "get": {
                "operationId": "getExport", "tags": ["export"], "summary": "A job's progress and failures",
                "responses": {"200": _json(_ref("ExportJob"), "the job"), **_errors(404)},
            },
        },
        "/systems/{system}/connections/user/{id}/freebusy": {
            "parameters": user_ids,
            "get": {
                "operationId": "freeBusy", "tags": ["export"],
                "summary": "Busy intervals of a user's free/busy calendar over a window (at most 62 days)",
                "parameters": [
                    _param("start", "query", _str(), "ISO date (from its start) or date-time with offset, in years "
                           "1900-2999",
                           required=True, example="2030-06-01"),
                    _param("end", "query", _str(), "ISO date (to its end) or date-time with offset, after start",
                           required=True, example="2030-06-07"),
                ],
                "responses": {"200": _json(_ref("FreeBusy"), "busy intervals in UTC"), **_errors(404, 409, 502)},
            },
        },
        "/systems/{system}/connections/space/{id}/external-events": {
            "parameters": space_ids,
            "get": {
                "operationId": "externalEvents", "tags": ["two-way sync"],
                "summary": "The feed of Outlook-side changes to a two-way room calendar, read by cursor",
                "parameters": [
                    _param("cursor", "query", {"type": "integer", "minimum": 0},
                           "`next_cursor` of the previous page; 0 (the default) from the start", example=0),
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500},
                           "page size (default 100)", example=100),
                ],
                "responses": {"200": _json(_ref("ExternalEvents"), "a page of changes"), **_errors(404)},
            },
        },
        "/systems/{system}/connections/space/{id}/external-events/backfill-creators": {
            "parameters": space_ids,
            "post": {
                "operationId": "backfillCreators", "tags": ["two-way sync"],
                "summary": "Publish creator name and email of external events seen before `populate_creator` "
                           "was turned on",
                "responses": {"200": _json(_ref("Backfilled"), "how many events were published again"),
                              **_errors(404, 409)},
            },
        },
        "/systems/{system}/rooms": {
            "parameters": [_path("system")],
            "get": {
                "operationId": "listRooms", "tags": ["rooms"],
                "summary": "The directory's rooms (Places API), for the host's dropdown",
                "description": "With the app's token (app access, application permission `Place.Read.All`), or "
                               "through a signed-in connection named by `via` (delegated `Place.Read.All`, which "
                               "needs admin consent). All pages are read; sorted by display name.",
                "parameters": [
                    _param("room_list", "query", _str(maxLength=254), "only the rooms of this room list (its "
                           "address, from `GET .../room-lists`)", example="building-a@contoso.org"),
                    _param("via", "query", _str(maxLength=80), "`space/{id}` or `user/{id}`: list with that "
                           "connection's token instead of the app's", example="space/room-101"),
                ],
                "responses": {"200": _json(_ref("Rooms"), "the rooms"), **_errors(403, 404, 409, 502)},
            },
        },
        "/systems/{system}/room-lists": {
            "parameters": [_path("system")],
            "get": {
                "operationId": "listRoomLists", "tags": ["rooms"],
                "summary": "The directory's room lists, the filter for `GET .../rooms?room_list=`",
                "parameters": [_param("via", "query", _str(maxLength=80), "as for `GET .../rooms`",
                                      example="space/room-101")],
                "responses": {"200": _json(_ref("RoomLists"), "the room lists"), **_errors(403, 404, 409, 502)},
            },
        },
        "/systems/{system}/alerts": {
            "parameters": [_path("system")],
            "get": {
                "operationId": "listAlerts", "tags": ["alerts"],
                "summary": "Open and recently resolved alerts for the admin dashboard",
                "responses": {"200": _json(_ref("Alerts"), "newest first, open ones before resolved"),
                              **_errors()},
            },
        },
    }
    for item in paths.values():
        for method, operation in item.items():
            if method != "parameters" and operation.get("security") is None:
                operation["responses"].setdefault("401", _error("no valid function key (`unauthorized`), or no "
                                                                "`x-system-key` (`system_key_required`)"))
    return {f"{ROUTE_PREFIX}{path}": item for path, item in paths.items()}


def _operator_errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "the system ID is not 1-64 letters, digits, `.`, `-`, `_` (`validation_failed`)",
        401: "no valid master key (`unauthorized`)",
        404: "no such system (`system_not_found`) or key (`system_key_not_found`)",
        409: "the system exists (`system_exists`), it has two active keys already (`too_many_system_keys`), or its "
             "keys changed meanwhile (`concurrency_conflict`, retry)",
        503: "storage cannot be reached (`dependency_unavailable`)",
    }
    return {str(status): _error(text[status]) for status in sorted({400, 401, 503, *statuses})}


def _callback_responses(outcome_redirect: str) -> dict[str, Any]:
    return {
        "303": _redirect(outcome_redirect),
        "200": _html("connected, with nowhere to send the browser back to"),
        "400": _html("no pending flow for this state (`flow_invalid`), or another failure with nowhere safe to "
                     "go back to: a readable page"),
    }


def _parameters() -> dict[str, Any]:
    return {
        "system": _param("system", "path", _str(pattern=ID_PATTERN), "the institution's ID (1-64 letters, "
                         "digits, `.`, `-`, `_`)", example="demo"),
        "location": _param("location", "path", _str(pattern=ID_PATTERN), "the host's location ID", example="main"),
        "kind": _param("kind", "path", _str(enum=KINDS), "`user` (shifts, free/busy) or `space` (room bookings)"),
        "id": _param("id", "path", _str(pattern=ID_PATTERN), "the host's ID of the user or space", example="42"),
        "userId": _param("id", "path", _str(pattern=ID_PATTERN), "the host's ID of the user", example="42"),
        "spaceId": _param("id", "path", _str(pattern=ID_PATTERN), "the host's ID of the space",
                          example="room-101"),
        "item": _param("item", "path", _str(pattern=ID_PATTERN), "the host's ID of the booking or shift",
                       example="b-1"),
        "job": _param("job", "path", _str(), "the job ID `POST .../exports` answered"),
        "keyId": _param("key_id", "path", _str(), "the key's ID (`key_id` when it was issued)"),
    }


@functools.cache
def _build() -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Outlook calendar sync",
            "version": "0.1.0",
            "description": (
                "Two-way Outlook / Exchange Online calendar sync for booking and staff-scheduling systems, over "
                "OAuth 2 with the Microsoft identity platform. JSON in and out; every route needs the function key "
                "(header `x-functions-key` or query `code`) except those marked anonymous (`security: []`), and "
                "every `/systems/{system}/...` route also that system's key (header `x-system-key`), unless the "
                "deployment turned system keys off (`SYSTEM_KEYS_REQUIRED=false`). The operator's routes (creating "
                "systems, issuing and revoking their keys) take the master key instead. "
                "Errors are `{\"error\": {\"code\", \"message\", \"microsoft_code\"?, \"details\"?: {\"field\"}}}` "
                "with a 4xx status (503 when a dependency is down), never a stack trace. The OAuth browser routes "
                "answer redirects or small HTML pages instead."),
        },
        "servers": [{"url": "/", "description": "the function app's host; every path carries the `api` prefix"}],
        "security": [{"functionKey": [], "systemKey": []}, {"functionKeyQuery": [], "systemKey": []}],
        "tags": [{"name": n} for n in ("operations", "operator", "integration", "connections", "rooms",
                                       "oauth (browser)", "export", "two-way sync", "alerts",
                                       "change notifications (Microsoft Graph)", "console")],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key",
                                "description": "an Azure Functions function (or host) key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code",
                                     "description": "the same key as a query parameter"},
                "systemKey": {"type": "apiKey", "in": "header", "name": "x-system-key",
                              "description": "the key of the system named in the path (`sk_<key_id>_<secret>`), "
                                             "issued by the operator; a key of another system answers 403"},
                "masterKey": {"type": "apiKey", "in": "header", "name": "x-functions-key",
                              "description": "the Function App's master key (operators only)"},
                "masterKeyQuery": {"type": "apiKey", "in": "query", "name": "code",
                                   "description": "the master key as a query parameter"},
            },
            "parameters": _parameters(),
            "schemas": _schemas(),
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_build())


@functools.cache
def document_bytes() -> bytes:
    return json.dumps(_build(), separators=(",", ":"), ensure_ascii=False).encode()
