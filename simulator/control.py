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
from simulator.directory import AUDIENCE_MULTI_ORG, AUDIENCES, AppRegistration, ClientSecret, Tenant, User
from simulator.identity.state import DAY, IdentityState, identity_state
from simulator.identity.web import json_response

Handler = Callable[[Request], Response]
PERMISSIONS = ("full_access", "editor")
ADMIN_CONSENT_CODES = (None, "65001", "90094")


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

    def create_room(self, tenant: str, address: str, display_name: str, *,
                    user_id: str | None = None) -> dict[str, Any]:
        return self._add_account(tenant, address, display_name, "room", user_id)

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
        by default one generated secret that never expires. The answer is the only place values appear."""
        if sign_in_audience not in AUDIENCES:
            raise ControlError(400, "BadRequest", f"sign_in_audience must be one of {AUDIENCES}")
        home = self.tenant(tenant)
        specs = list(secrets) if secrets is not None else [{}]
        made = [self._secret(s.get("value"), s.get("expires_at"), s.get("expires_in_days")) for s in specs]
        app = self.sim.directory.add_app(
            home.id, display_name, client_id=client_id, sign_in_audience=sign_in_audience,
            redirect_uris=list(redirect_uris), secrets=made, application_permissions=list(application_permissions),
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
        """An administrator approved the app for the whole tenant (users need not, and may not, consent)."""
        found = self.tenant(tenant)
        self.app(client_id)
        with self.sim.directory.lock:
            found.admin_consented.add(client_id)
        return {"tenant_id": found.id, "client_id": client_id}

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

    # --- observation -------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        directory = self.sim.directory
        identity = self.identity
        with directory.lock:
            tenants = [
                {"id": t.id, "name": t.name, "domain": t.domain, "personal": t.personal,
                 "admin_consent_required": t.admin_consent_required, "admin_consented": sorted(t.admin_consented)}
                for t in directory.tenants.values()
            ]
            users = [
                {"id": u.id, "tenant_id": u.tenant_id, "address": u.address, "display_name": u.display_name,
                 "kind": u.kind, "enabled": u.enabled}
                for u in directory.users.values()
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
        Rule("/_control/apps", endpoint="create_app", methods=["POST"]),
        Rule("/_control/apps/<client_id>/secrets", endpoint="add_secret", methods=["POST"]),
        Rule("/_control/mailbox-grants", endpoint="grant_mailbox", methods=["POST"]),
        Rule("/_control/users/<user>/disable", endpoint="disable_user", methods=["POST"]),
        Rule("/_control/users/<user>/enable", endpoint="enable_user", methods=["POST"]),
        Rule("/_control/users/<user>/revoke-sessions", endpoint="revoke_sessions", methods=["POST"]),
        Rule("/_control/users/<user>/consents/<client_id>", endpoint="revoke_consent", methods=["DELETE"]),
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
    return (201 if endpoint.startswith(("create_", "add_", "grant_", "admin_")) else 200), result


def make_control_handler(sim: Simulator, *, reset: Callable[[], Simulator] | None = None) -> Handler:
    control = Control(sim)

    def handle(request: Request) -> Response:
        adapter = _ROUTES.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            status, result = _call(control, endpoint, dict(args), _body(request), reset)
        except HTTPException as exc:
            return json_response({"error": {"code": exc.name.replace(" ", ""), "message": exc.description}},
                                 exc.code or 400)
        except ControlError as exc:
            return json_response({"error": {"code": exc.code, "message": exc.message}}, exc.status)
        return json_response(result, status)

    return handle
