"""The control API: set up the directory and steer the identity side, from Python (tests, the seed) or over
HTTP under `/_control/` (the local run, browser tests, other processes).

It exists so tests can put the world into the states the product must survive (expired secrets, idle or
revoked grants, disabled users, tenants that forbid user consent) without reaching into private structures.
The Graph side owns `/_control/graph/*`.
"""

from __future__ import annotations

import inspect
import secrets as pysecrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from werkzeug import Request, Response
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from simulator.core import Simulator
from simulator.directory import AUDIENCE_MULTI_ORG, AUDIENCES, AppRegistration, ClientSecret, Place, Tenant, User
from simulator.identity.scopes import GRAPH_APP_ROLES
from simulator.identity.state import DAY, IdentityState, identity_state
from simulator.identity.web import json_response
from simulator.opath import CUSTOM_ATTRIBUTES
from simulator.rbac import RbacError

Handler = Callable[[Request], Response]
PERMISSIONS = ("full_access", "editor")
ADMIN_CONSENT_CODES = (None, "65001", "90094")
BOOKING_TYPES = ("standard", "reserved")  # https://learn.microsoft.com/graph/api/resources/room#bookingtype-values
# Set-Mailbox attributes `set_mailbox_attributes` takes: the ones a management scope or the Places API reads.
MAILBOX_ATTRIBUTES = (*CUSTOM_ATTRIBUTES, "HiddenFromAddressListsEnabled")


class ControlError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _secret_view(secret: ClientSecret) -> dict[str, Any]:
    return {"hint": secret.value[:3] + "...", "expires_at": _iso(secret.expires_at)}


class Control:
    """Operations on one Simulator; every method answers a JSON-ready dict with the IDs it created."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def identity(self) -> IdentityState:
        return identity_state(self.sim)

    # --- lookups -----------------------------------------------------------------------------------------

    def tenant(self, id_or_domain: str) -> Tenant:
        directory = self.sim.directory
        with directory.lock:
            found = directory.tenants.get(id_or_domain) or next(
                (t for t in directory.tenants.values() if t.domain.lower() == id_or_domain.lower()), None
            )
        if found is None:
            raise ControlError(404, "TenantNotFound", f"no tenant {id_or_domain!r}")
        return found

    def user(self, id_or_address: str) -> User:
        found = self.sim.directory.find_user(id_or_address)
        if found is None:
            raise ControlError(404, "UserNotFound", f"no user or mailbox {id_or_address!r}")
        return found

    def app(self, client_id: str) -> AppRegistration:
        found = self.sim.directory.apps.get(client_id)
        if found is None:
            raise ControlError(404, "AppNotFound", f"no app registration {client_id!r}")
        return found

    # --- directory ----------------------------------------------------------------------------------------

    def create_tenant(self, name: str, domain: str, *, admin_consent_required: str | None = None,
                      tenant_id: str | None = None) -> dict[str, Any]:
        if admin_consent_required not in ADMIN_CONSENT_CODES:
            raise ControlError(400, "BadRequest", f"admin_consent_required must be one of {ADMIN_CONSENT_CODES}")
        tenant = self.sim.directory.add_tenant(
            name, domain, tenant_id=tenant_id, admin_consent_required=admin_consent_required
        )
        return {"id": tenant.id, "name": tenant.name, "domain": tenant.domain}

    def set_tenant_policy(self, tenant: str, *, admin_consent_required: str | None) -> dict[str, Any]:
        if admin_consent_required not in ADMIN_CONSENT_CODES:
            raise ControlError(400, "BadRequest", f"admin_consent_required must be one of {ADMIN_CONSENT_CODES}")
        found = self.tenant(tenant)
        found.admin_consent_required = admin_consent_required
        return {"id": found.id, "admin_consent_required": admin_consent_required}

    def _add_account(self, tenant: str, address: str, display_name: str, kind: str,
                     user_id: str | None) -> dict[str, Any]:
        found = self.tenant(tenant)
        try:
            user = self.sim.directory.add_user(found.id, address, display_name, kind=kind, user_id=user_id)
        except ValueError as exc:
            raise ControlError(409, "Conflict", str(exc)) from exc
        return {"id": user.id, "tenant_id": user.tenant_id, "address": user.address, "kind": user.kind}

    def create_user(self, tenant: str, address: str, display_name: str, *,
                    user_id: str | None = None) -> dict[str, Any]:
        return self._add_account(tenant, address, display_name, "user", user_id)

    def create_room(self, tenant: str, address: str, display_name: str, *, user_id: str | None = None,
                    capacity: int | None = None, building: str | None = None, floor_number: int | None = None,
                    floor_label: str | None = None, label: str | None = None, nickname: str | None = None,
                    phone: str | None = None, is_wheelchair_accessible: bool = False,
                    booking_type: str = "standard", tags: Iterable[str] = (),
                    audio_device_name: str | None = None, video_device_name: str | None = None,
                    display_device_name: str | None = None, address_details: dict[str, Any] | None = None,
                    geo_coordinates: dict[str, Any] | None = None) -> dict[str, Any]:
        """A room mailbox; the optional attributes are what the Places API shows (Graph's `room`).
        `address_details` is the room's physicalAddress (street, city, state, postalCode, countryOrRegion)."""
        if booking_type not in BOOKING_TYPES:
            raise ControlError(400, "BadRequest", f"booking_type must be one of {BOOKING_TYPES}")
        for name, value in (("capacity", capacity), ("floor_number", floor_number)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ControlError(400, "BadRequest", f"{name} must be an integer")
        place = Place(capacity, building, floor_number, floor_label, label, nickname, phone,
                      bool(is_wheelchair_accessible), booking_type, [str(t) for t in tags], audio_device_name,
                      video_device_name, display_device_name, address_details, geo_coordinates)
        made = self._add_account(tenant, address, display_name, "room", user_id)
        self.user(made["id"]).place = place
        return made

    def create_room_list(self, tenant: str, address: str, display_name: str, rooms: Iterable[str] = (), *,
                         list_id: str | None = None) -> dict[str, Any]:
        """An Exchange room list (New-DistributionGroup -RoomList) holding rooms of the same tenant."""
        found = self.tenant(tenant)
        members = [self.user(r) for r in rooms]
        strays = [m.address for m in members if m.kind != "room" or m.tenant_id != found.id]
        if strays:
            raise ControlError(400, "BadRequest", f"not rooms of tenant {found.domain}: {strays}")
        try:
            made = self.sim.directory.add_room_list(found.id, address, display_name, [m.id for m in members],
                                                    list_id=list_id)
        except ValueError as exc:
            raise ControlError(409, "Conflict", str(exc)) from exc
        return {"id": made.id, "tenant_id": made.tenant_id, "address": made.address,
                "rooms": [m.address for m in members]}

    def set_mailbox_attributes(self, address: str, **attributes: Any) -> dict[str, Any]:
        """Set-Mailbox for the attributes a management scope filters on (CustomAttribute1..15) and
        HiddenFromAddressListsEnabled (hidden rooms are not listed by the Places API). None or "" clears one."""
        unknown = sorted(set(attributes) - set(MAILBOX_ATTRIBUTES))
        if unknown:
            raise ControlError(400, "BadRequest", f"unknown mailbox attributes {unknown}; allowed: "
                                                  "CustomAttribute1..CustomAttribute15, HiddenFromAddressListsEnabled")
        for name, value in attributes.items():
            kind = bool if name == "HiddenFromAddressListsEnabled" else str
            if value is not None and not isinstance(value, kind):
                raise ControlError(400, "BadRequest", f"{name} must be a {kind.__name__} (or null to clear)")
        found = self.user(address)
        merged = self.sim.directory.set_attributes(found, attributes, self.sim.clock.time())
        return {"id": found.id, "address": found.address, "attributes": merged}

    def grant_mailbox(self, grantee: str, mailbox: str, permission: str = "full_access") -> dict[str, Any]:
        if permission not in PERMISSIONS:
            raise ControlError(400, "BadRequest", f"permission must be one of {PERMISSIONS}")
        grant = self.sim.directory.grant_mailbox(self.user(grantee).id, self.user(mailbox).id, permission)
        return {"grantee_id": grant.grantee_id, "mailbox_id": grant.mailbox_id, "permission": grant.permission}

    # --- app registrations -------------------------------------------------------------------------------------

    def _secret(self, value: str | None, expires_at: float | None, expires_in_days: float | None) -> ClientSecret:
        if expires_at is None and expires_in_days is not None:
            expires_at = self.sim.clock.time() + expires_in_days * DAY
        return ClientSecret(value or pysecrets.token_urlsafe(30), expires_at)

    def create_app(
        self,
        tenant: str,
        display_name: str,
        *,
        client_id: str | None = None,
        sign_in_audience: str = AUDIENCE_MULTI_ORG,
        redirect_uris: Iterable[str] = (),
        secrets: Iterable[dict[str, Any]] | None = None,
        application_permissions: Iterable[str] = (),
    ) -> dict[str, Any]:
        """`secrets`: dicts with optional `value`, `expires_at` (epoch, simulator clock) or `expires_in_days`;
        by default one generated secret that never expires. The answer is the only place values appear.

        `application_permissions` are the registration's requested application permissions, granted (admin
        consented) in the home tenant only, as an app registered and consented by its own tenant's administrator:
        other tenants grant them with `admin_consent` or `grant_app_permissions`."""
        if sign_in_audience not in AUDIENCES:
            raise ControlError(400, "BadRequest", f"sign_in_audience must be one of {AUDIENCES}")
        home = self.tenant(tenant)
        permissions = sorted(self._app_roles(application_permissions)) if application_permissions else []
        specs = list(secrets) if secrets is not None else [{}]
        made = [self._secret(s.get("value"), s.get("expires_at"), s.get("expires_in_days")) for s in specs]
        app = self.sim.directory.add_app(
            home.id, display_name, client_id=client_id, sign_in_audience=sign_in_audience,
            redirect_uris=list(redirect_uris), secrets=made, application_permissions=permissions,
        )
        return {
            "client_id": app.client_id,
            "tenant_id": app.tenant_id,
            "sign_in_audience": app.sign_in_audience,
            "secrets": [{"value": s.value, "expires_at": s.expires_at} for s in made],
        }

    def add_secret(self, client_id: str, *, value: str | None = None, expires_at: float | None = None,
                   expires_in_days: float | None = None) -> dict[str, Any]:
        app = self.app(client_id)
        secret = self._secret(value, expires_at, expires_in_days)
        with self.sim.directory.lock:
            app.secrets.append(secret)
        return {"client_id": client_id, "value": secret.value, "expires_at": secret.expires_at}

    def admin_consent(self, tenant: str, client_id: str) -> dict[str, Any]:
        """An administrator approved the app for the whole tenant (users need not, and may not, consent). Tenant-wide
        admin consent covers every permission the registration asks for, its application permissions included:
        https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent"""
        found = self.tenant(tenant)
        app = self.app(client_id)
        with self.sim.directory.lock:
            found.admin_consented.add(client_id)
        roles = self.sim.directory.grant_app_roles(found.id, client_id, set(app.application_permissions))
        return {"tenant_id": found.id, "client_id": client_id, "app_roles": sorted(roles)}

    # --- application permissions and Exchange RBAC for Applications ---------------------------------------------

    def _app_roles(self, roles: Iterable[str]) -> set[str]:
        wanted = [roles] if isinstance(roles, str) else list(roles)
        if not wanted or not all(isinstance(r, str) for r in wanted):
            raise ControlError(400, "BadRequest", "roles must be a non-empty list of application permission names")
        known = {r.lower(): r for r in GRAPH_APP_ROLES}
        unknown = [r for r in wanted if r.lower() not in known]
        if unknown:
            raise ControlError(400, "BadRequest", f"not Microsoft Graph application permissions: {unknown} "
                                                  f"(known here: {sorted(GRAPH_APP_ROLES)})")
        return {known[r.lower()] for r in wanted}

    def _visible_app(self, tenant: Tenant, client_id: str) -> AppRegistration:
        app = self.app(client_id)
        if app.sign_in_audience == "AzureADMyOrg" and app.tenant_id != tenant.id:
            raise ControlError(400, "BadRequest", f"the single-tenant app {client_id} cannot be used in "
                                                  f"tenant {tenant.domain}")
        return app

    def grant_app_permissions(self, tenant: str, client_id: str, roles: Iterable[str]) -> dict[str, Any]:
        """An administrator of `tenant` grants application permissions (Graph app roles) to the app there, creating
        its service principal if needed. Tokens issued for that tenant from now on carry them; other tenants'
        tokens never do."""
        found = self.tenant(tenant)
        self._visible_app(found, client_id)
        granted = self.sim.directory.grant_app_roles(found.id, client_id, self._app_roles(roles))
        return {"tenant_id": found.id, "client_id": client_id, "app_roles": sorted(granted)}

    def revoke_app_permissions(self, tenant: str, client_id: str, roles: Iterable[str]) -> dict[str, Any]:
        """Remove granted application permissions. Tokens already issued keep them until they expire (a JWT's
        `roles` claim cannot be recalled); new tokens lack them."""
        found = self.tenant(tenant)
        self.app(client_id)
        remaining = self.sim.directory.revoke_app_roles(found.id, client_id, self._app_roles(roles))
        return {"tenant_id": found.id, "client_id": client_id, "app_roles": sorted(remaining)}

    def _rbac(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except RbacError as exc:
            raise ControlError(exc.status, exc.code, exc.message) from exc

    def create_management_scope(self, tenant: str, name: str, recipient_filter: str) -> dict[str, Any]:
        """New-ManagementScope -Name <name> -RecipientRestrictionFilter <filter> (see simulator/opath.py for the
        supported subset)."""
        found = self.tenant(tenant)
        scope = self._rbac(lambda: self.sim.directory.rbac.create_scope(found.id, name, recipient_filter,
                                                                        self.sim.clock.time()))
        return {"tenant_id": found.id, "name": scope.name, "recipient_filter": scope.recipient_filter}

    def set_management_scope(self, tenant: str, name: str, recipient_filter: str) -> dict[str, Any]:
        found = self.tenant(tenant)
        scope = self._rbac(lambda: self.sim.directory.rbac.set_scope(found.id, name, recipient_filter,
                                                                     self.sim.clock.time()))
        return {"tenant_id": found.id, "name": scope.name, "recipient_filter": scope.recipient_filter}

    def delete_management_scope(self, tenant: str, name: str) -> dict[str, Any]:
        found = self.tenant(tenant)
        self._rbac(lambda: self.sim.directory.rbac.delete_scope(found.id, name, self.sim.clock.time()))
        return {"tenant_id": found.id, "name": name, "deleted": True}

    def assign_management_role(self, tenant: str, client_id: str, role: str,
                               scope: str | None = None) -> dict[str, Any]:
        """New-ManagementRoleAssignment -App <service principal> -Role "Application Calendars.ReadWrite"
        -CustomResourceScope <scope>; without `scope` the assignment covers the whole organization. The app needs
        a service principal in the tenant (Exchange's New-ServicePrincipal points at the Entra one)."""
        found = self.tenant(tenant)
        self._visible_app(found, client_id)
        if not self.sim.directory.has_service_principal(found.id, client_id):
            raise ControlError(404, "ManagementObjectNotFound",
                               f"The operation couldn't be performed because object '{client_id}' couldn't be "
                               f"found: the app has no service principal in {found.domain} (consent first).")
        made = self._rbac(lambda: self.sim.directory.rbac.assign(found.id, client_id, role, scope,
                                                                 self.sim.clock.time()))
        return {"tenant_id": found.id, "name": made.name, "client_id": client_id, "role": made.role,
                "scope": made.scope or "Organization"}

    def remove_management_role(self, tenant: str, client_id: str, role: str,
                               scope: str | None = None) -> dict[str, Any]:
        found = self.tenant(tenant)
        gone = self._rbac(lambda: self.sim.directory.rbac.remove(found.id, client_id, role, scope,
                                                                 self.sim.clock.time()))
        return {"tenant_id": found.id, "name": gone.name, "removed": True}

    def test_service_principal_authorization(self, tenant: str, client_id: str,
                                             mailbox: str | None = None) -> dict[str, Any]:
        """Test-ServicePrincipalAuthorization -Identity <app> [-Resource <mailbox>]: one row per RBAC role
        assignment (RoleName, GrantedPermissions, AllowedResourceScope, ScopeType, InScope true/false, or
        "Not Run" without a mailbox). Bypasses the propagation delay; Entra grants are not RBAC's and not listed."""
        found = self.tenant(tenant)
        self.app(client_id)
        target = self.user(mailbox) if mailbox else None
        if target is not None and target.tenant_id != found.id:
            raise ControlError(404, "ManagementObjectNotFound",
                               f"The operation couldn't be performed because object '{mailbox}' couldn't be found.")
        rows = self.sim.directory.rbac.test_authorization(found.id, client_id, target)
        return {"tenant_id": found.id, "client_id": client_id, "mailbox": target.address if target else None,
                "results": rows}

    def set_rbac_propagation_delay(self, seconds: float) -> dict[str, Any]:
        """How long RBAC for Applications changes (and the mailbox attributes scopes read) take to reach Graph, in
        simulated seconds. Microsoft documents 30 minutes to 2 hours; the default 0 keeps tests fast."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ControlError(400, "BadRequest", "seconds must be a number >= 0")
        self.sim.directory.rbac.propagation_seconds = float(seconds)
        return {"propagation_seconds": float(seconds)}

    # --- identity events ----------------------------------------------------------------------------------------

    def advance_clock(self, *, seconds: float = 0.0, days: float = 0.0) -> dict[str, Any]:
        offset = self.sim.clock.advance(seconds + days * DAY)
        return {"offset_seconds": offset, "now": self.sim.clock.now().isoformat()}

    def revoke_consent(self, user: str, client_id: str) -> dict[str, Any]:
        """The user withdrew consent (My Apps, or an admin removed the grant): refresh tokens of the grant
        die with AADSTS65001 and live access tokens stop working."""
        found = self.user(user)
        families = self.identity.withdraw_consent(found.id, client_id)
        revoked = self.sim.tokens.revoke_where(client_id=client_id, user_id=found.id)
        return {"user_id": found.id, "client_id": client_id, "refresh_families_revoked": families,
                "access_tokens_revoked": revoked}

    def revoke_sessions(self, user: str) -> dict[str, Any]:
        """revokeSignInSessions / a password reset: every grant issued before now fails with AADSTS50173."""
        found = self.user(user)
        now = self.sim.clock.time()
        with self.identity.lock:
            self.identity.tokens_valid_from[found.id] = now
        revoked = self.sim.tokens.revoke_where(user_id=found.id)
        return {"user_id": found.id, "tokens_valid_from": _iso(now), "access_tokens_revoked": revoked}

    def disable_user(self, user: str) -> dict[str, Any]:
        found = self.user(user)
        found.enabled = False
        revoked = self.sim.tokens.revoke_where(user_id=found.id)
        return {"user_id": found.id, "enabled": False, "access_tokens_revoked": revoked}

    def enable_user(self, user: str) -> dict[str, Any]:
        found = self.user(user)
        found.enabled = True
        return {"user_id": found.id, "enabled": True}

    # --- change notifications ---------------------------------------------------------------------------------

    def _subscriptions(self) -> Any:
        from simulator.graph.state import attach_graph  # the Graph side imports late, as the server does

        return attach_graph(self.sim).subscriptions

    def set_notification_faults(self, drop_rate: float = 0.0, duplicate_rate: float = 0.0, reorder: bool = False,
                                extra_latency_seconds: float = 0.0, seed: int | None = None) -> dict[str, Any]:
        """Faults of change notification delivery (lifecycle notifications are never faulted): a share lost, a
        share delivered twice, reordering within a window, extra latency up to `extra_latency_seconds`. All zero
        (the defaults) turns them off; `seed` makes the dice repeatable."""
        from simulator.graph.delivery import NotificationFaults

        faults = NotificationFaults(float(drop_rate), float(duplicate_rate), bool(reorder),
                                    float(extra_latency_seconds))
        try:
            self._subscriptions().notifier.set_faults(faults, None if seed is None else int(seed))
        except ValueError as exc:
            raise ControlError(400, "BadRequest", str(exc)) from exc
        return self._subscriptions().notifier.settings()

    def set_notification_latency(self, seconds: float) -> dict[str, Any]:
        """How long after a change its notification is sent (default 1.0 s)."""
        try:
            self._subscriptions().notifier.set_latency(float(seconds))
        except ValueError as exc:
            raise ControlError(400, "BadRequest", str(exc)) from exc
        return self._subscriptions().notifier.settings()

    def set_notification_timeouts(self, validation_seconds: float | None = None,
                                  delivery_seconds: float | None = None) -> dict[str, Any]:
        """Shorten Graph's 10 s validation and 3 s delivery limits (tests of slow endpoints); never longer."""
        try:
            self._subscriptions().notifier.set_timeouts(validation_seconds, delivery_seconds)
        except ValueError as exc:
            raise ControlError(400, "BadRequest", str(exc)) from exc
        return self._subscriptions().notifier.settings()

    def list_subscriptions(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Live subscriptions (all, or one tenant's), with their clientState, for test assertions."""
        subs = self._subscriptions()
        tenant_id = self.tenant(tenant).id if tenant else None
        return [subs.view(s) for s in subs.all_live() if tenant_id is None or s.tenant_id == tenant_id]

    def send_lifecycle_event(self, subscription_id: str, event: str) -> dict[str, Any]:
        """Make Graph send a lifecycle notification now: reauthorizationRequired, subscriptionRemoved (which also
        removes the subscription) or missed."""
        try:
            return self._subscriptions().lifecycle_event(subscription_id, event)
        except KeyError as exc:
            raise ControlError(404, "SubscriptionNotFound", f"no live subscription {subscription_id!r}") from exc
        except ValueError as exc:
            raise ControlError(400, "BadRequest", str(exc)) from exc

    def notification_counters(self) -> dict[str, Any]:
        """Counts of change and lifecycle notifications: sent, dropped (fault), duplicated (fault), retried,
        abandoned (4 hours of failures), discarded (subscription gone), posts, validations, ... and `queued` now."""
        from simulator.graph.delivery import PREFIX

        counts = self.sim.counters.snapshot()["counts"]
        assert isinstance(counts, dict)  # nosec B101 - the snapshot's shape
        out: dict[str, Any] = {name: 0 for name in ("sent", "dropped", "duplicated", "retried", "abandoned",
                                                    "discarded", "posts", "lifecycle_sent")}
        out.update({k[len(PREFIX):]: v for k, v in counts.items() if k.startswith(PREFIX)})
        out["queued"] = self._subscriptions().notifier.pending()
        return out

    def flush_notifications(self, timeout: float = 5.0) -> dict[str, Any]:
        """Wait (real time, at most `timeout`) until no notification is queued or in flight."""
        return self._subscriptions().notifier.flush(float(timeout))

    # --- observation -------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        directory = self.sim.directory
        identity = self.identity
        with directory.lock:
            tenants = [
                {"id": t.id, "name": t.name, "domain": t.domain, "personal": t.personal,
                 "admin_consent_required": t.admin_consent_required, "admin_consented": sorted(t.admin_consented),
                 "service_principals": sorted(t.service_principals),
                 "app_roles": {c: sorted(r) for c, r in sorted(t.app_roles.items())}}
                for t in directory.tenants.values()
            ]
            users = [
                {"id": u.id, "tenant_id": u.tenant_id, "address": u.address, "display_name": u.display_name,
                 "kind": u.kind, "enabled": u.enabled, "attributes": dict(u.attributes)}
                for u in directory.users.values()
            ]
            room_lists = [
                {"id": r.id, "tenant_id": r.tenant_id, "address": r.address, "display_name": r.display_name,
                 "rooms": [directory.users[i].address for i in r.room_ids if i in directory.users]}
                for r in directory.room_lists.values()
            ]
            apps = [
                {"client_id": a.client_id, "tenant_id": a.tenant_id, "display_name": a.display_name,
                 "sign_in_audience": a.sign_in_audience, "redirect_uris": list(a.redirect_uris),
                 "application_permissions": list(a.application_permissions),
                 "secrets": [_secret_view(s) for s in a.secrets]}
                for a in directory.apps.values()
            ]
            grants = [
                {"grantee_id": g.grantee_id, "mailbox_id": g.mailbox_id, "permission": g.permission}
                for g in sorted(directory.grants, key=lambda g: (g.grantee_id, g.mailbox_id))
            ]
        with identity.lock:
            consents = [
                {"user_id": u, "client_id": c, "scopes": sorted(s)} for (u, c), s in identity.consents.items()
            ]
            live_families = sum(1 for f in identity.families.values() if f.revoked_reason is None)
        return {
            "clock": {"now": self.sim.clock.now().isoformat(), "offset_seconds": self.sim.clock.offset},
            "tenants": tenants,
            "users": users,
            "apps": apps,
            "mailbox_grants": grants,
            "room_lists": room_lists,
            "exchange_rbac": directory.rbac.snapshot(),
            "consents": consents,
            "refresh_token_families": live_families,
            "counters": self.sim.counters.snapshot(),
        }


_ROUTES = Map(
    [
        Rule("/_control/state", endpoint="state", methods=["GET"]),
        Rule("/_control/reset", endpoint="reset", methods=["POST"]),
        Rule("/_control/seed-demo", endpoint="seed_demo", methods=["POST"]),
        Rule("/_control/counters/reset", endpoint="reset_counters", methods=["POST"]),
        Rule("/_control/clock/advance", endpoint="advance_clock", methods=["POST"]),
        Rule("/_control/tenants", endpoint="create_tenant", methods=["POST"]),
        Rule("/_control/tenants/<tenant>", endpoint="set_tenant_policy", methods=["PATCH"]),
        Rule("/_control/tenants/<tenant>/users", endpoint="create_user", methods=["POST"]),
        Rule("/_control/tenants/<tenant>/rooms", endpoint="create_room", methods=["POST"]),
        Rule("/_control/tenants/<tenant>/admin-consents", endpoint="admin_consent", methods=["POST"]),
        Rule("/_control/tenants/<tenant>/room-lists", endpoint="create_room_list", methods=["POST"]),
        Rule("/_control/tenants/<tenant>/app-permissions", endpoint="grant_app_permissions", methods=["POST"]),
        Rule("/_control/tenants/<tenant>/app-permissions", endpoint="revoke_app_permissions", methods=["DELETE"]),
        Rule("/_control/tenants/<tenant>/management-scopes", endpoint="create_management_scope", methods=["POST"]),
        Rule("/_control/tenants/<tenant>/management-scopes/<name>", endpoint="set_management_scope",
             methods=["PATCH"]),
        Rule("/_control/tenants/<tenant>/management-scopes/<name>", endpoint="delete_management_scope",
             methods=["DELETE"]),
        Rule("/_control/tenants/<tenant>/management-role-assignments", endpoint="assign_management_role",
             methods=["POST"]),
        Rule("/_control/tenants/<tenant>/management-role-assignments", endpoint="remove_management_role",
             methods=["DELETE"]),
        Rule("/_control/tenants/<tenant>/service-principals/<client_id>/authorization",
             endpoint="test_service_principal_authorization", methods=["GET"]),
        Rule("/_control/rbac/propagation-delay", endpoint="set_rbac_propagation_delay", methods=["PUT"]),
        Rule("/_control/mailboxes/<address>/attributes", endpoint="set_mailbox_attributes", methods=["PATCH"]),
        Rule("/_control/apps", endpoint="create_app", methods=["POST"]),
        Rule("/_control/apps/<client_id>/secrets", endpoint="add_secret", methods=["POST"]),
        Rule("/_control/mailbox-grants", endpoint="grant_mailbox", methods=["POST"]),
        Rule("/_control/users/<user>/disable", endpoint="disable_user", methods=["POST"]),
        Rule("/_control/users/<user>/enable", endpoint="enable_user", methods=["POST"]),
        Rule("/_control/users/<user>/revoke-sessions", endpoint="revoke_sessions", methods=["POST"]),
        Rule("/_control/users/<user>/consents/<client_id>", endpoint="revoke_consent", methods=["DELETE"]),
        Rule("/_control/subscriptions", endpoint="list_subscriptions", methods=["GET"]),
        Rule("/_control/tenants/<tenant>/subscriptions", endpoint="list_subscriptions", methods=["GET"]),
        Rule("/_control/subscriptions/<subscription_id>/lifecycle", endpoint="send_lifecycle_event",
             methods=["POST"]),
        Rule("/_control/notifications/faults", endpoint="set_notification_faults", methods=["PUT"]),
        Rule("/_control/notifications/latency", endpoint="set_notification_latency", methods=["PUT"]),
        Rule("/_control/notifications/timeouts", endpoint="set_notification_timeouts", methods=["PUT"]),
        Rule("/_control/notifications/counters", endpoint="notification_counters", methods=["GET"]),
        Rule("/_control/notifications/flush", endpoint="flush_notifications", methods=["POST"]),
    ],
    strict_slashes=False,
)


def _body(request: Request) -> dict[str, Any]:
    if not request.data:
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ControlError(400, "BadRequest", "the body must be a JSON object")
    return body


def _call(control: Control, endpoint: str, args: dict[str, Any], body: dict[str, Any],
          reset: Callable[[], Simulator] | None) -> tuple[int, Any]:
    if endpoint == "state":
        return 200, control.state()
    if endpoint == "reset":
        if reset is None:
            raise ControlError(501, "NotImplemented", "this server cannot reset its simulator")
        reset()
        return 200, {"reset": True}
    if endpoint == "seed_demo":
        from simulator.seed import seed_demo  # the seed builds on Control: import late to keep modules acyclic

        if not body.get("redirect_uri"):
            raise ControlError(400, "BadRequest", "redirect_uri is required")
        return 201, seed_demo(control.sim, str(body["redirect_uri"]))
    if endpoint == "reset_counters":
        control.sim.counters.reset()
        return 200, {"reset": True}
    method = getattr(control, endpoint)
    try:
        bound = inspect.signature(method).bind(**args, **body)
    except TypeError as exc:
        raise ControlError(400, "BadRequest", str(exc)) from exc
    result = method(*bound.args, **bound.kwargs)
    return (201 if endpoint.startswith(("create_", "add_", "grant_", "admin_", "assign_")) else 200), result


def make_control_handler(sim: Simulator, *, reset: Callable[[], Simulator] | None = None) -> Handler:
    control = Control(sim)

    def handle(request: Request) -> Response:
        adapter = _ROUTES.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            body = dict(request.args) if request.method == "GET" else _body(request)  # GET: query parameters
            status, result = _call(control, endpoint, dict(args), body, reset)
        except HTTPException as exc:
            return json_response({"error": {"code": exc.name.replace(" ", ""), "message": exc.description}},
                                 exc.code or 400)
        except ControlError as exc:
            return json_response({"error": {"code": exc.code, "message": exc.message}}, exc.status)
        return json_response(result, status)

    return handle
