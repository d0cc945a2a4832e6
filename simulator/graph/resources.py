"""Handlers for users, calendars and single events (create, read, update, delete)."""

from __future__ import annotations

from typing import Any

from simulator.directory import User
from simulator.graph.context import Ctx
from simulator.graph.errors import GraphError, bad_request
from simulator.graph.events import parse_expand, parse_select, serialize
from simulator.graph.http import GraphResponse
from simulator.graph.store import Calendar, Instance


def _select(doc: dict[str, Any], raw: str | None) -> dict[str, Any]:
    fields = parse_select(raw)
    if not fields:
        return doc
    keep = {f.lower() for f in fields} | {"id", "@odata.context"}
    return {k: v for k, v in doc.items() if k.lower() in keep}


def user_doc(user: User) -> dict[str, Any]:
    given, _, surname = user.display_name.partition(" ")
    return {
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": given or None,
        "jobTitle": None,
        "mail": user.address,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": surname or None,
        "userPrincipalName": user.address,
        "id": user.id,
    }


def get_user(ctx: Ctx) -> GraphResponse:
    doc = {"@odata.context": f"{ctx.request.base_url}/$metadata#users/$entity", **user_doc(ctx.mailbox)}
    return GraphResponse(200, _select(doc, ctx.request.param("$select")))


def calendar_doc(cal: Calendar, owner: User, can_edit: bool) -> dict[str, Any]:
    return {
        "id": cal.id,
        "name": cal.name,
        "color": cal.color,
        "hexColor": "",
        "isDefaultCalendar": cal.is_default,
        "changeKey": cal.change_key,
        "canShare": can_edit,
        "canViewPrivateItems": can_edit,
        "canEdit": can_edit,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": not cal.is_default,
        "owner": {"name": owner.display_name, "address": owner.address},
    }


def _can_edit(ctx: Ctx) -> bool:
    return bool(ctx.access and ctx.access.can_write)


def list_calendars(ctx: Ctx) -> GraphResponse:
    store = ctx.state.store
    with store.lock:
        cals = list(store.mailbox(ctx.mailbox.id).calendars.values())
    docs = [_select(calendar_doc(c, ctx.mailbox, _can_edit(ctx)), ctx.request.param("$select")) for c in cals]
    return GraphResponse(200, {"@odata.context": f"{ctx.request.base_url}/$metadata#users('{ctx.mailbox.id}')"
                                                 "/calendars", "value": docs})


def get_calendar(ctx: Ctx) -> GraphResponse:
    doc = calendar_doc(ctx.calendar(), ctx.mailbox, _can_edit(ctx))
    doc = {"@odata.context": f"{ctx.request.base_url}/$metadata#users('{ctx.mailbox.id}')/calendars/$entity", **doc}
    return GraphResponse(200, _select(doc, ctx.request.param("$select")))


def create_calendar(ctx: Ctx) -> GraphResponse:
    body = ctx.request.json()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("The calendar needs a 'name'.", "ErrorInvalidRequest")
    store = ctx.state.store
    with store.lock:
        box = store.mailbox(ctx.mailbox.id)
        if any(c.name.lower() == name.strip().lower() for c in box.calendars.values()):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        cal = store.add_calendar(ctx.mailbox.id, name.strip())
    return GraphResponse(201, calendar_doc(cal, ctx.mailbox, True))


def _event_response(ctx: Ctx, inst: Instance, status: int) -> GraphResponse:
    req = ctx.request
    doc = serialize(inst, ctx.tz, ctx.mailbox.address, select=parse_select(req.param("$select")),
                    extended=parse_expand(req.param("$expand")), immutable=ctx.immutable)
    doc = {"@odata.context": f"{req.base_url}/$metadata#users('{ctx.mailbox.id}')/events/$entity", **doc}
    return GraphResponse(status, doc, ctx.prefer.applied())


def create_event(ctx: Ctx) -> GraphResponse:
    body = ctx.request.json()
    organizer = ctx.caller.user or ctx.mailbox
    event, _created = ctx.state.create(ctx.mailbox, ctx.calendar(), body, organizer,
                                       dedup=ctx.fault != "duplicate_transaction")
    # A transactionId replay answers 201 with the event the first request made, so a retried create after a
    # lost answer looks exactly like a first create to the client.
    return _event_response(ctx, Instance(event, event.id, event.start, event.end), 201)


def get_event(ctx: Ctx) -> GraphResponse:
    from simulator.graph.events import resolve

    assert ctx.item_id is not None  # nosec B101 - an invariant the caller guarantees
    inst = resolve(ctx.state.store, ctx.mailbox.id, ctx.item_id, ctx.item_calendar, immutable=ctx.immutable)
    return _event_response(ctx, inst, 200)


def update_event(ctx: Ctx) -> GraphResponse:
    assert ctx.item_id is not None  # nosec B101 - an invariant the caller guarantees
    inst = ctx.state.update(ctx.mailbox, ctx.item_id, ctx.request.json(), ctx.item_calendar,
                            immutable=ctx.immutable)
    return _event_response(ctx, inst, 200)


def delete_event(ctx: Ctx) -> GraphResponse:
    assert ctx.item_id is not None  # nosec B101 - an invariant the caller guarantees
    ctx.state.delete(ctx.mailbox, ctx.item_id, ctx.item_calendar, immutable=ctx.immutable)
    return GraphResponse(204)
