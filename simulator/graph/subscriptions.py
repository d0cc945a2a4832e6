"""Change notification subscriptions on Outlook events: `/subscriptions` (create, list, get, renew, reauthorize,
delete), the validation handshake, and turning the store's writes into notifications for the delivery queue.

The rules are the documented ones, each cited where it is applied. Where the pages disagree the stricter one wins
(never more permissive than a page): `clientState` is optional on the subscription resource page but required on
the webhooks page, so it is required here. What the simulator does not model is refused with a 400 naming it
(resource data in notifications, `$filter` on the resource, resources other than events).
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from simulator.directory import User
from simulator.graph.auth import Caller, authorize, mailbox_of
from simulator.graph.delivery import Notifier, ValidationFailed
from simulator.graph.errors import GraphError, bad_request
from simulator.graph.http import GraphRequest, GraphResponse
from simulator.graph.store import Event

if TYPE_CHECKING:
    from simulator.graph.state import GraphState

# https://learn.microsoft.com/graph/api/resources/subscription#subscription-lifetime: Outlook event subscriptions
# without resource data live at most "10,080 minutes (under seven days)", and "any request with expirationDateTime
# set to under 45 minutes after the time of the request is automatically set to 45 minutes after the request time".
# (Live Graph has been reported to answer "can only be 10070 minutes in the future"; clients keep a margin.)
MAX_LIFETIME = timedelta(minutes=10_080)
MIN_LIFETIME = timedelta(minutes=45)
# https://learn.microsoft.com/graph/api/resources/subscription: clientState "The maximum length is 128 characters".
MAX_CLIENT_STATE = 128
# https://learn.microsoft.com/graph/outlook-change-notifications-overview: "a maximum limit of 1000 active
# subscriptions for Outlook resources per mailbox for all applications".
MAX_PER_MAILBOX = 1000
CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
# https://learn.microsoft.com/graph/change-notifications-lifecycle-events#reauthorizationrequired-notifications: the
# page's illustrative schedule challenges once a quarter of the remaining time is at most 180 minutes (12 hours
# left) and repeats at shorter intervals; here: from 12 hours before expiry, at most once an hour.
REAUTH_BEFORE = 12 * 3600.0
REAUTH_EVERY = 3600.0
# The properties of microsoft.graph.subscription (https://learn.microsoft.com/graph/api/resources/subscription).
_PROPERTIES = {"changeType", "notificationUrl", "lifecycleNotificationUrl", "resource", "expirationDateTime",
               "clientState", "includeResourceData", "encryptionCertificate", "encryptionCertificateId",
               "latestSupportedTlsVersion", "notificationQueryOptions", "notificationContentType",
               "notificationUrlAppId", "@odata.type", "id", "applicationId", "creatorId"}
_READ_ONLY = {"id", "applicationId", "creatorId"}
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$", re.IGNORECASE)


@dataclass
class Subscription:
    id: str
    resource: str
    change_type: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    expires: datetime
    client_state: str | None
    application_id: str
    creator_id: str
    delegated: bool
    tenant_id: str
    mailbox_id: str
    # https://learn.microsoft.com/graph/outlook-immutable-id: a subscription created with
    # `Prefer: IdType="ImmutableId"` gets immutable IDs in its notifications; one created without keeps default IDs.
    immutable: bool
    latest_tls: str = "v1_2"
    last_reauth: float | None = None
    creator: Caller | None = field(default=None, repr=False)  # whose access the subscription lives on


def iso7(when: datetime) -> str:
    """Graph's timestamp shape: seven fractional digits, UTC."""
    when = when.astimezone(UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond:06d}0Z"


def _invalid(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


def _extension_error(operation: str, status: str, reason: str, http: int) -> GraphError:
    """Outlook's subscription back end reports through this envelope (e.g. issue 7625 of
    microsoftgraph/microsoft-graph-docs-contrib: a delegated subscription to a room calendar answers 403
    "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]")."""
    return GraphError(http, "ExtensionError", f"Operation: {operation}; Exception: [Status Code: {status}; "
                                              f"Reason: {reason}]")


def _not_found(subscription_id: str) -> GraphError:
    return GraphError(404, "ResourceNotFound", f"The object was not found: subscription '{subscription_id}'.")


def _https_url(body: dict[str, Any], name: str) -> str:
    """notificationUrl / lifecycleNotificationUrl: "This URL must make use of the HTTPS protocol"
    (https://learn.microsoft.com/graph/api/resources/subscription); Graph answers http ones with
    "NotificationUrl scheme='http' is not supported." (microsoftgraph/microsoft-graph-docs issue 2751)."""
    raw = body.get(name)
    label = name[0].upper() + name[1:]
    if not isinstance(raw, str) or not raw.strip():
        raise _invalid(f"{label} is required and must be a string.")
    parts = urlsplit(raw)
    if parts.scheme.lower() != "https":
        raise _invalid(f"{label} scheme='{parts.scheme}' is not supported.")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise _invalid(f"Invalid notification url='{raw}'.")
    return raw


def parse_expiration(raw: object) -> datetime:
    if not isinstance(raw, str):
        raise bad_request("The property 'expirationDateTime' is required and must be a DateTimeOffset.")
    m = _ISO.match(raw.strip())
    if not m:
        raise bad_request(f"Cannot convert the literal '{raw}' to the expected type 'Edm.DateTimeOffset'.")
    micro = (m.group(2) or "")[:6].ljust(6, "0")
    zone = m.group(3) or "Z"
    try:
        when = datetime.fromisoformat(f"{m.group(1)}.{micro}{'+00:00' if zone.upper() == 'Z' else zone}")
    except ValueError:
        raise bad_request(f"Cannot convert the literal '{raw}' to the expected type 'Edm.DateTimeOffset'.") from None
    return when.astimezone(UTC)


def bounded_expiration(raw: object, now: datetime, operation: str) -> datetime:
    when = parse_expiration(raw)
    if when > now + MAX_LIFETIME:
        minutes = int(MAX_LIFETIME.total_seconds() // 60)
        raise _extension_error(operation, "BadRequest",
                               f"Subscription expiration can only be {minutes} minutes in the future.", 400)
    return max(when, now + MIN_LIFETIME)


def _change_types(raw: object) -> tuple[str, frozenset[str]]:
    """changeType: "created, updated, deleted ... combined using a comma-separated list" (subscription page)."""
    if not isinstance(raw, str) or not raw.strip():
        raise _invalid("ChangeType is required and must be a string.")
    kinds = [k.strip() for k in raw.split(",")]
    unknown = [k for k in kinds if k not in CHANGE_TYPES]
    if unknown or not kinds:
        raise _invalid(f"Invalid changeType '{raw}'; the supported values are {', '.join(CHANGE_TYPES)}.")
    return ",".join(dict.fromkeys(kinds)), frozenset(kinds)


def _resource_owner(resource: object) -> str:
    """The mailbox a resource names ("me" or a user ID / UPN). https://learn.microsoft.com/graph/
    outlook-change-notifications-overview lists `/me/events` and `/users/{id}/events` for events; other paths,
    and query options (`$filter`, `$select` for resource data), are not modelled and refused."""
    if not isinstance(resource, str) or not resource.strip():
        raise _invalid("Resource is required and must be a string.")
    if resource.lower().startswith(("http://", "https://")):
        raise _invalid(f"Resource '{resource}' must not include the base URL.")
    if "?" in resource:
        raise _invalid(f"Resource '{resource}': query options are not supported by the simulator.")
    segs = [s for s in resource.strip().split("/") if s]
    low = [s.lower() for s in segs]
    if low == ["me", "events"]:
        return "me"
    if len(segs) == 3 and low[0] == "users" and low[2] == "events":
        return segs[1]
    raise _invalid(f"Resource '{resource}' is not supported for change notifications by the simulator; "
                   "subscribe to events at /me/events or /users/{id}/events.")


class Subscriptions:
    """The subscriptions of one Graph state, and the bridge from store writes to the delivery queue."""

    def __init__(self, state: GraphState) -> None:
        self.state = state
        self.sim = state.sim
        self.lock = threading.Lock()
        self.subs: dict[str, Subscription] = {}
        self.by_mailbox: dict[str, dict[str, Subscription]] = {}  # so a write looks at its mailbox's only
        self.notifier = Notifier(self.sim, self.is_live, self.tick, self.has_subscriptions)
        state.store.listeners.append(self.on_change)

    # --- registry -------------------------------------------------------------------------------------------------

    def has_subscriptions(self) -> bool:
        with self.lock:
            return bool(self.subs)

    def is_live(self, subscription_id: str) -> bool:
        with self.lock:
            sub = self.subs.get(subscription_id)
            return sub is not None and sub.expires > self.sim.clock.now()

    def live(self, subscription_id: str) -> Subscription | None:
        """A subscription that exists and has not expired: "If you don't renew a subscription in time, Microsoft
        Graph deletes the subscription" (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks)."""
        with self.lock:
            sub = self.subs.get(subscription_id)
            if sub is not None and sub.expires <= self.sim.clock.now():
                self._drop(sub)
                self.sim.counters.incr("graph.subscriptions.expired")
                return None
            return sub

    def _drop(self, sub: Subscription) -> None:
        """Forget a subscription; call with `self.lock` held."""
        self.subs.pop(sub.id, None)
        self.by_mailbox.get(sub.mailbox_id, {}).pop(sub.id, None)

    def all_live(self) -> list[Subscription]:
        now = self.sim.clock.now()
        with self.lock:
            return [s for s in self.subs.values() if s.expires > now]

    def tick(self, now: float) -> None:
        """Expiry and reauthorization challenges, on the simulator's clock."""
        moment = datetime.fromtimestamp(now, tz=UTC)
        challenge: list[Subscription] = []
        with self.lock:
            for sub in list(self.subs.values()):
                if sub.expires <= moment:
                    self._drop(sub)
                    self.sim.counters.incr("graph.subscriptions.expired")
                    continue
                left = (sub.expires - moment).total_seconds()
                if sub.lifecycle_url and left <= REAUTH_BEFORE and (
                        sub.last_reauth is None or now - sub.last_reauth >= REAUTH_EVERY):
                    sub.last_reauth = now
                    challenge.append(sub)
        for sub in challenge:
            self.send_lifecycle(sub, "reauthorizationRequired")

    def send_lifecycle(self, sub: Subscription, event: str) -> bool:
        """Queue a lifecycle notification; only subscriptions with a lifecycleNotificationUrl get them
        (https://learn.microsoft.com/graph/change-notifications-lifecycle-events). Call without `self.lock`."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"event must be one of {LIFECYCLE_EVENTS}")
        if not sub.lifecycle_url:
            return False
        body = {"subscriptionId": sub.id, "subscriptionExpirationDateTime": iso7(sub.expires),
                "tenantId": sub.tenant_id, "clientState": sub.client_state, "lifecycleEvent": event}
        self.notifier.enqueue(sub.lifecycle_url, body, sub.id, lifecycle=True)
        self.sim.counters.incr(f"graph.subscriptions.lifecycle.{event}")
        return True

    def lifecycle_event(self, subscription_id: str, event: str) -> dict[str, Any]:
        """Control: make Graph send `event` now. subscriptionRemoved also removes the subscription, as Graph does
        when it sends one ("you need to recreate the subscription")."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"event must be one of {', '.join(LIFECYCLE_EVENTS)}")
        sub = self.live(subscription_id)
        if sub is None:
            raise KeyError(subscription_id)
        if event == "subscriptionRemoved":
            with self.lock:
                self._drop(sub)
        elif event == "reauthorizationRequired":
            with self.lock:
                sub.last_reauth = self.sim.clock.time()
        queued = self.send_lifecycle(sub, event)
        return {"subscription_id": sub.id, "event": event, "queued": queued,
                "removed": event == "subscriptionRemoved"}

    def view(self, sub: Subscription) -> dict[str, Any]:
        """How the control API lists a subscription (everything, for test assertions)."""
        owner = self.sim.directory.users.get(sub.mailbox_id)
        return {"id": sub.id, "resource": sub.resource, "changeType": sub.change_type,
                "notificationUrl": sub.notification_url, "lifecycleNotificationUrl": sub.lifecycle_url,
                "expirationDateTime": iso7(sub.expires), "clientState": sub.client_state,
                "applicationId": sub.application_id, "creatorId": sub.creator_id, "tenantId": sub.tenant_id,
                "mailbox": owner.address if owner else sub.mailbox_id, "immutableIds": sub.immutable,
                "delegated": sub.delegated}

    def close(self) -> None:
        self.notifier.close()

    # --- store writes -> notifications ------------------------------------------------------------------------

    def on_change(self, change: str, before: Event | None, after: Event | None) -> None:
        """Called under the store's lock for every event write: queue a notification per matching subscription."""
        if not self.subs:
            return
        event = after or before
        assert event is not None  # nosec B101 - every write has a version before or after
        now = self.sim.clock.now()
        with self.lock:
            subs = [s for s in self.by_mailbox.get(event.mailbox_id, {}).values() if s.expires > now]
        for sub in subs:
            if not self._still_allowed(sub):
                continue
            for kind, version in _changes(change, before, after, sub.immutable):
                if kind in sub.change_types:
                    self.notifier.enqueue(sub.notification_url, self._notification(sub, kind, version), sub.id)

    def _still_allowed(self, sub: Subscription) -> bool:
        """Whether the app may still read the subscribed mailbox (Exchange RBAC scopes change under app-only
        subscriptions). When it may not, the change is not notified and Graph challenges the app: reauthorization
        is required "When an administrator has revoked your app's permissions to read a resource"
        (https://learn.microsoft.com/graph/change-notifications-lifecycle-events), at most hourly here."""
        if sub.creator is None or not sub.creator.app_only:
            return True
        mailbox = self.sim.directory.users.get(sub.mailbox_id)
        try:
            if mailbox is None:
                raise GraphError(404, "ErrorInvalidUser", "gone")
            authorize(self.sim, sub.creator, mailbox, write=False)
            return True
        except GraphError:
            now = self.sim.clock.time()
            with self.lock:
                due = sub.last_reauth is None or now - sub.last_reauth >= REAUTH_EVERY
                if due:
                    sub.last_reauth = now
            self.sim.counters.incr("graph.notifications.unauthorized")
            if due:
                self.send_lifecycle(sub, "reauthorizationRequired")
            return False

    @staticmethod
    def _notification(sub: Subscription, kind: str, event: Event) -> dict[str, Any]:
        """A basic (no resource data) notification, shaped like the documented Outlook one
        (https://learn.microsoft.com/graph/outlook-change-notifications-overview#receive-notifications-without-
        resource-data)."""
        item_id = event.id if sub.immutable else event.rest_id
        resource = f"Users/{event.mailbox_id}/Events/{item_id}"
        return {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": iso7(sub.expires),
            "changeType": kind,
            "resource": resource,
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                             "@odata.etag": f'W/"{event.change_key}"', "id": item_id},
            "clientState": sub.client_state,
            "tenantId": sub.tenant_id,
        }

    # --- the HTTP API ---------------------------------------------------------------------------------------------

    def create(self, req: GraphRequest, caller: Caller) -> GraphResponse:
        body = req.json()
        unknown = sorted(set(body) - _PROPERTIES)
        if unknown:
            raise bad_request(f"The property '{unknown[0]}' does not exist on type 'microsoft.graph.subscription'. "
                              "Make sure to only use property names that are defined by the type.")
        given = sorted(set(body) & _READ_ONLY)
        if given:
            raise bad_request(f"The property '{given[0]}' is read-only.")
        change_type, kinds = _change_types(body.get("changeType"))
        notification_url = _https_url(body, "notificationUrl")
        lifecycle_url = _https_url(body, "lifecycleNotificationUrl") if body.get("lifecycleNotificationUrl") else None
        mailbox = self._mailbox(caller, body.get("resource"), "Create")
        client_state = body.get("clientState")
        # clientState: required on https://learn.microsoft.com/graph/change-notifications-delivery-webhooks ("The
        # clientState property is required"), at most 128 characters on the subscription resource page.
        if not isinstance(client_state, str) or not client_state:
            raise _invalid("ClientState is required.")
        if len(client_state) > MAX_CLIENT_STATE:
            raise _invalid(f"ClientState must be at most {MAX_CLIENT_STATE} characters.")
        if body.get("includeResourceData"):
            raise _invalid("includeResourceData (rich notifications with encrypted resource data) is not supported "
                           "by the simulator.")
        tls = body.get("latestSupportedTlsVersion") or "v1_2"
        if tls not in TLS_VERSIONS:
            raise _invalid(f"Invalid latestSupportedTlsVersion '{tls}'; use one of {', '.join(TLS_VERSIONS)}.")
        expires = bounded_expiration(body.get("expirationDateTime"), self.sim.clock.now(), "Create")
        with self.lock:
            active = len(self.by_mailbox.get(mailbox.id, {}))
        if active >= MAX_PER_MAILBOX:
            raise _extension_error("Create", "Forbidden", f"The mailbox has reached the limit of {MAX_PER_MAILBOX} "
                                   "subscriptions.", 403)
        # The handshake: https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-
        # validation ("If the endpoint validation fails, Microsoft Graph doesn't create the subscription"), done for
        # the lifecycleNotificationUrl too (https://learn.microsoft.com/graph/change-notifications-lifecycle-events).
        for url in (notification_url, lifecycle_url):
            if url:
                self._validate(url, req)
        sub = Subscription(
            id=str(uuid.uuid4()), resource=str(body["resource"]), change_type=change_type, change_types=kinds,
            notification_url=notification_url, lifecycle_url=lifecycle_url, expires=expires,
            client_state=client_state, application_id=caller.client_id, creator_id=_creator(caller),
            delegated=not caller.app_only, tenant_id=mailbox.tenant_id, mailbox_id=mailbox.id,
            immutable=req.prefer().immutable_ids, latest_tls=tls, creator=caller,
        )
        with self.lock:
            self.subs[sub.id] = sub
            self.by_mailbox.setdefault(sub.mailbox_id, {})[sub.id] = sub
        self.sim.counters.incr("graph.subscriptions.created")
        self.notifier.wake()
        return GraphResponse(201, self._doc(sub, req, with_state=True))

    def list(self, req: GraphRequest, caller: Caller) -> GraphResponse:
        # https://learn.microsoft.com/graph/api/subscription-list: delegated callers see "Subscriptions created by
        # this app for the signed-in user only", app-only ones "created by this app for itself or for any user in
        # the directory"; "the clientState property value is not returned".
        subs = [s for s in self.all_live() if self._visible(s, caller)]
        return GraphResponse(200, {"@odata.context": f"{req.base_url}/$metadata#subscriptions",
                                   "value": [self._doc(s, req, with_state=False, entity=False) for s in subs]})

    def get(self, req: GraphRequest, caller: Caller, subscription_id: str) -> GraphResponse:
        sub = self._managed(caller, subscription_id, "Get")
        return GraphResponse(200, self._doc(sub, req, with_state=False))

    def update(self, req: GraphRequest, caller: Caller, subscription_id: str) -> GraphResponse:
        """Renew (expirationDateTime) and/or move delivery (notificationUrl, validated again)
        (https://learn.microsoft.com/graph/api/subscription-update). A lifecycleNotificationUrl "can't" be added
        by updating (https://learn.microsoft.com/graph/change-notifications-lifecycle-events)."""
        sub = self._managed(caller, subscription_id, "Update")
        body = req.json()
        extra = sorted(set(body) - {"expirationDateTime", "notificationUrl", "@odata.type"})
        if extra:
            raise _invalid(f"Only expirationDateTime and notificationUrl can be updated, not '{extra[0]}'.")
        if not ({"expirationDateTime", "notificationUrl"} & set(body)):
            raise _invalid("Nothing to update: send expirationDateTime and/or notificationUrl.")
        expires = sub.expires
        if "expirationDateTime" in body:
            expires = bounded_expiration(body["expirationDateTime"], self.sim.clock.now(), "Update")
        url = sub.notification_url
        if "notificationUrl" in body:
            url = _https_url(body, "notificationUrl")
            if url != sub.notification_url:
                self._validate(url, req)
        with self.lock:
            if sub.id not in self.subs:
                raise _not_found(subscription_id)
            sub.expires, sub.notification_url = expires, url
            # "renewing your subscription also reauthorizes your endpoint" (lifecycle events page).
            sub.last_reauth = None
        self.sim.counters.incr("graph.subscriptions.renewed")
        return GraphResponse(200, self._doc(sub, req, with_state=True))

    def reauthorize(self, caller: Caller, subscription_id: str) -> GraphResponse:
        """POST /subscriptions/{id}/reauthorize: reauthorize "without extending its expiration date"
        (https://learn.microsoft.com/graph/change-notifications-lifecycle-events); 204 on success."""
        sub = self._managed(caller, subscription_id, "Reauthorize")
        with self.lock:
            sub.last_reauth = self.sim.clock.time()
        self.sim.counters.incr("graph.subscriptions.reauthorized")
        return GraphResponse(204)

    def delete(self, caller: Caller, subscription_id: str) -> GraphResponse:
        sub = self._managed(caller, subscription_id, "Delete")
        with self.lock:
            self._drop(sub)
        self.sim.counters.incr("graph.subscriptions.deleted")
        return GraphResponse(204)

    # --- helpers --------------------------------------------------------------------------------------------------

    def _validate(self, url: str, req: GraphRequest) -> None:
        # Real tokens read like "Validation: Testing client application reachability for subscription Request-Id:
        # ..." (microsoftgraph/microsoft-graph-docs issue 21160): spaces and colons, so decoding is exercised.
        token = f"Validation: Testing client application reachability for subscription Request-Id: {req.request_id}"
        try:
            self.notifier.validate(url, token)
        except ValidationFailed as exc:
            self.sim.counters.incr("graph.notifications.validations_failed")
            # "If validation fails, the request to create the subscription returns a 400 Bad Request error"
            # (https://learn.microsoft.com/graph/api/subscription-post-subscriptions).
            raise GraphError(400, "ValidationError", exc.message) from None

    def _mailbox(self, caller: Caller, resource: object, operation: str) -> User:
        """The subscribed mailbox, checked as https://learn.microsoft.com/graph/outlook-change-notifications-overview
        says: a read scope on the resource (Calendars.Read, delegated and application); "Delegated permission
        supports subscribing to items in folders in only the signed-in user's mailbox"; the sharing permissions
        (Calendars.Read.Shared ...) "do not support subscribing"; application permissions reach any mailbox the
        app may read (which `authorize` decides, with its tenant and mailbox-scope rules)."""
        mailbox = mailbox_of(self.sim, caller, _resource_owner(resource))
        if caller.user is not None:
            if caller.user.id != mailbox.id:
                raise _extension_error(operation, "Forbidden", "Forbidden", 403)
            if not caller.has("Calendars.Read", "Calendars.ReadWrite"):
                raise _extension_error(operation, "Forbidden", "Access is denied. Check credentials and try again.",
                                       403)
        try:
            authorize(self.sim, caller, mailbox, write=False)
        except GraphError as exc:
            if exc.status != 403:
                raise
            raise _extension_error(operation, "Forbidden", exc.message, 403) from None
        return mailbox

    def _visible(self, sub: Subscription, caller: Caller) -> bool:
        if sub.application_id != caller.client_id or sub.tenant_id != caller.grant.tenant_id:
            return False
        return caller.user is None or sub.creator_id == caller.user.id

    def _managed(self, caller: Caller, subscription_id: str, operation: str) -> Subscription:
        """A subscription this caller may manage, with the read scope on its resource still in place ("Creating and
        managing (getting, updating, and deleting) a subscription requires a read scope to the resource")."""
        sub = self.live(subscription_id)
        if sub is None or not self._visible(sub, caller):
            raise _not_found(subscription_id)
        mailbox = self.sim.directory.users.get(sub.mailbox_id)
        if mailbox is None:
            raise _not_found(subscription_id)
        who = "me" if caller.user is not None else mailbox.id
        self._mailbox(caller, f"/users/{who}/events" if who != "me" else "/me/events", operation)
        return sub

    @staticmethod
    def _doc(sub: Subscription, req: GraphRequest, *, with_state: bool, entity: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if entity:
            doc["@odata.context"] = f"{req.base_url}/$metadata#subscriptions/$entity"
        doc.update({
            "id": sub.id,
            "resource": sub.resource,
            "applicationId": sub.application_id,
            "changeType": sub.change_type,
            "clientState": sub.client_state if with_state else None,
            "notificationUrl": sub.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": sub.lifecycle_url,
            "expirationDateTime": iso7(sub.expires),
            "creatorId": sub.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": sub.latest_tls,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
            "notificationContentType": None,
        })
        return doc


def _creator(caller: Caller) -> str:
    """creatorId: the signed-in user, or "the ID of the service principal corresponding to the app" (one stable ID
    per app and tenant here, as the simulator keeps no service principal objects)."""
    if caller.user is not None:
        return caller.user.id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{caller.grant.tenant_id}:{caller.client_id}"))


def _changes(change: str, before: Event | None, after: Event | None,
             immutable: bool) -> list[tuple[str, Event]]:
    """The notifications one store write makes. A move between calendars of the mailbox keeps the immutable ID
    (an update) but gives a new default ID, which a default-ID subscriber sees as the old item gone and a new one
    created."""
    if change == "created" and after is not None:
        return [("created", after)]
    if change == "updated" and after is not None:
        return [("updated", after)]
    if change == "deleted" and before is not None:
        return [("deleted", before)]
    if change == "moved" and before is not None and after is not None:
        return [("updated", after)] if immutable else [("deleted", before), ("created", after)]
    return []


def is_subscriptions_path(path: str) -> bool:
    segs = [s for s in path.split("/") if s]
    return bool(segs) and segs[0].lower() == "subscriptions"


def handle(state: GraphState, req: GraphRequest, caller: Caller) -> GraphResponse:
    """Route a request under /subscriptions."""
    subs: Subscriptions = state.subscriptions
    segs = [s for s in req.path.split("/") if s]
    method = req.method
    if len(segs) == 1:
        if method == "POST":
            return subs.create(req, caller)
        if method == "GET":
            return subs.list(req, caller)
    elif len(segs) == 2:
        if method == "GET":
            return subs.get(req, caller, segs[1])
        if method == "PATCH":
            return subs.update(req, caller, segs[1])
        if method == "DELETE":
            return subs.delete(caller, segs[1])
    elif len(segs) == 3 and segs[2].lower() == "reauthorize":
        if method == "POST":
            return subs.reauthorize(caller, segs[1])
    else:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment in '{method} {req.path}'.")
    raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
