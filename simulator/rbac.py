"""Exchange Online's RBAC for Applications: management scopes of mailboxes and application role assignments, per
tenant, as https://learn.microsoft.com/exchange/permissions-exo/application-rbac describes them.

- A role assignment gives an app (its service principal in the tenant) an application role such as
  "Application Calendars.ReadWrite", limited to the mailboxes a management scope's recipient filter matches
  (`New-ManagementRoleAssignment -App <sp> -Role ... -CustomResourceScope <scope>`), or the whole organization
  without a scope.
- These grants are additive with the application permissions granted in Microsoft Entra ID: an Entra
  `Calendars.ReadWrite` app role still reaches every mailbox of the tenant, a scope does not narrow it (same page,
  and https://learn.microsoft.com/graph/auth-limit-mailbox-access: "independent of the unscoped grants").
- Exchange caches app permissions: "changes ... take 30 minutes to 2 hours" (same page, Limitations). Modelled by
  `propagation_seconds` (default 0, so tests are fast): Graph sees the configuration and the mailboxes'
  attributes as they were that long ago; `Test-ServicePrincipalAuthorization` bypasses the cache and sees now.
- Scopes in use cannot be removed: https://learn.microsoft.com/powershell/module/exchange/remove-managementscope
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.opath import CUSTOM_ATTRIBUTES, FilterError, Predicate, compile_filter

if TYPE_CHECKING:
    from simulator.directory import User

# The application roles Exchange Online offers and the Graph permissions each carries ("Supported Application
# Roles" on the application-rbac page). There is no Place.Read.All role: room discovery needs the Entra permission.
APPLICATION_ROLES: dict[str, frozenset[str]] = {
    "Application Mail.Read": frozenset({"Mail.Read"}),
    "Application Mail.ReadBasic": frozenset({"Mail.ReadBasic"}),
    "Application Mail.ReadWrite": frozenset({"Mail.ReadWrite"}),
    "Application Mail.Send": frozenset({"Mail.Send"}),
    "Application MailboxSettings.Read": frozenset({"MailboxSettings.Read"}),
    "Application MailboxSettings.ReadWrite": frozenset({"MailboxSettings.ReadWrite"}),
    "Application Calendars.Read": frozenset({"Calendars.Read"}),
    "Application Calendars.ReadWrite": frozenset({"Calendars.ReadWrite"}),
    "Application Contacts.Read": frozenset({"Contacts.Read"}),
    "Application Contacts.ReadWrite": frozenset({"Contacts.ReadWrite"}),
    "Application Mail Full Access": frozenset({"Mail.ReadWrite", "Mail.Send"}),
    "Application Exchange Full Access": frozenset({"Mail.ReadWrite", "Mail.Send", "MailboxSettings.ReadWrite",
                                                   "Calendars.ReadWrite", "Contacts.ReadWrite"}),
    "Application EWS.AccessAsApp": frozenset({"EWS.AccessAsApp"}),
}
_ROLE_NAMES = {name.lower(): name for name in APPLICATION_ROLES}
ORGANIZATION = "Organization"  # AllowedResourceScope/ScopeType of an assignment without a scope


class RbacError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_found(what: str) -> RbacError:
    # Exchange's wording for an identity it cannot resolve.
    return RbacError(404, "ManagementObjectNotFound",
                     f"The operation couldn't be performed because object '{what}' couldn't be found.")


@dataclass(frozen=True)
class ManagementScope:
    name: str
    recipient_filter: str
    predicate: Predicate = field(compare=False, repr=False)


@dataclass(frozen=True)
class RoleAssignment:
    client_id: str
    role: str  # canonical name, e.g. "Application Calendars.ReadWrite"
    scope: str | None  # management scope name; None = the whole organization

    @property
    def name(self) -> str:
        return f"{self.role}-{self.client_id}"


@dataclass(frozen=True)
class RbacConfig:
    """One tenant's RBAC for Applications configuration at one moment (immutable; changes append a new one)."""

    scopes: tuple[ManagementScope, ...] = ()
    assignments: tuple[RoleAssignment, ...] = ()

    def scope(self, name: str) -> ManagementScope | None:
        return next((s for s in self.scopes if s.name.lower() == name.lower()), None)


def recipient_attributes(user: User, at: float | None = None) -> dict[str, str]:
    """What a recipient filter sees of a mailbox, now or (`at`) as it was then."""
    attrs = user.attributes
    if at is not None and user.attribute_history:
        stamps = [stamp for stamp, _ in user.attribute_history]
        index = bisect.bisect_right(stamps, at) - 1
        attrs = user.attribute_history[max(index, 0)][1]
    view = {"RecipientTypeDetails": user.recipient_type_details, "PrimarySmtpAddress": user.address}
    view.update({name: str(attrs[name]) for name in CUSTOM_ATTRIBUTES if attrs.get(name)})
    return view


class Rbac:
    """All tenants' RBAC for Applications state, with its history for the propagation delay."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.propagation_seconds = 0.0
        self._history: dict[str, list[tuple[float, RbacConfig]]] = {}

    # --- reading -------------------------------------------------------------------------------------------

    def current(self, tenant_id: str) -> RbacConfig:
        with self.lock:
            history = self._history.get(tenant_id)
            return history[-1][1] if history else RbacConfig()

    def as_seen_at(self, tenant_id: str, when: float) -> RbacConfig:
        with self.lock:
            history = self._history.get(tenant_id) or []
            seen = [config for stamp, config in history if stamp <= when]
            return seen[-1] if seen else RbacConfig()

    def graph_permissions(self, tenant_id: str, client_id: str, mailbox: User, now: float) -> frozenset[str]:
        """The Graph permissions RBAC gives the app on this mailbox, as Graph sees them (through the cache)."""
        when = now - self.propagation_seconds
        config = self.as_seen_at(tenant_id, when)
        attrs = recipient_attributes(mailbox, when if self.propagation_seconds else None)
        out: set[str] = set()
        for assignment in config.assignments:
            if assignment.client_id == client_id and _covers(config, assignment, attrs):
                out |= APPLICATION_ROLES[assignment.role]
        return frozenset(out)

    def test_authorization(self, tenant_id: str, client_id: str, mailbox: User | None) -> list[dict[str, Any]]:
        """Test-ServicePrincipalAuthorization: each RBAC assignment of the app, its scope and whether `mailbox` is
        in it ("Not Run" without one). Bypasses the cache; Entra grants are not listed (they are not RBAC's):
        https://learn.microsoft.com/powershell/module/exchange/test-serviceprincipalauthorization"""
        config = self.current(tenant_id)
        attrs = recipient_attributes(mailbox) if mailbox is not None else None
        rows = []
        for assignment in config.assignments:
            if assignment.client_id != client_id:
                continue
            rows.append({
                "RoleName": assignment.role,
                "GrantedPermissions": sorted(APPLICATION_ROLES[assignment.role]),
                "AllowedResourceScope": assignment.scope or ORGANIZATION,
                "ScopeType": "CustomRecipientScope" if assignment.scope else ORGANIZATION,
                "InScope": "Not Run" if attrs is None else _covers(config, assignment, attrs),
            })
        return rows

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            tenants = list(self._history)
        out: dict[str, Any] = {"propagation_seconds": self.propagation_seconds, "tenants": {}}
        for tenant_id in tenants:
            config = self.current(tenant_id)
            out["tenants"][tenant_id] = {
                "management_scopes": [{"name": s.name, "recipient_filter": s.recipient_filter}
                                      for s in config.scopes],
                "role_assignments": [{"name": a.name, "client_id": a.client_id, "role": a.role,
                                      "scope": a.scope or ORGANIZATION} for a in config.assignments],
            }
        return out

    # --- changes -------------------------------------------------------------------------------------------

    def _commit(self, tenant_id: str, config: RbacConfig, now: float) -> None:
        self._history.setdefault(tenant_id, []).append((now, config))

    def create_scope(self, tenant_id: str, name: str, recipient_filter: str, now: float) -> ManagementScope:
        scope = _scope(name, recipient_filter)
        with self.lock:
            config = self.current(tenant_id)
            if config.scope(name) is not None:
                raise RbacError(409, "ManagementObjectAlreadyExists",
                                f"The management scope '{name}' already exists.")
            self._commit(tenant_id, RbacConfig((*config.scopes, scope), config.assignments), now)
        return scope

    def set_scope(self, tenant_id: str, name: str, recipient_filter: str, now: float) -> ManagementScope:
        with self.lock:
            config = self.current(tenant_id)
            old = config.scope(name)
            if old is None:
                raise _not_found(name)
            scope = _scope(old.name, recipient_filter)
            scopes = tuple(scope if s is old else s for s in config.scopes)
            self._commit(tenant_id, RbacConfig(scopes, config.assignments), now)
        return scope

    def delete_scope(self, tenant_id: str, name: str, now: float) -> None:
        with self.lock:
            config = self.current(tenant_id)
            old = config.scope(name)
            if old is None:
                raise _not_found(name)
            users = [a.name for a in config.assignments if a.scope == old.name]
            if users:
                raise RbacError(409, "ScopeInUse",
                                f"The management scope '{old.name}' can't be removed because it's used by the "
                                f"management role assignments {users}. Remove them first.")
            scopes = tuple(s for s in config.scopes if s is not old)
            self._commit(tenant_id, RbacConfig(scopes, config.assignments), now)

    def assign(self, tenant_id: str, client_id: str, role: str, scope: str | None, now: float) -> RoleAssignment:
        canonical = _ROLE_NAMES.get(role.lower().strip())
        if canonical is None:
            raise _not_found(role)
        with self.lock:
            config = self.current(tenant_id)
            scope_name = None
            if scope is not None:
                found = config.scope(scope)
                if found is None:
                    raise _not_found(scope)
                scope_name = found.name
            assignment = RoleAssignment(client_id, canonical, scope_name)
            if assignment in config.assignments:
                raise RbacError(409, "ManagementObjectAlreadyExists",
                                f"The role assignment '{assignment.name}' already exists.")
            self._commit(tenant_id, RbacConfig(config.scopes, (*config.assignments, assignment)), now)
        return assignment

    def remove(self, tenant_id: str, client_id: str, role: str, scope: str | None, now: float) -> RoleAssignment:
        canonical = _ROLE_NAMES.get(role.lower().strip(), role)
        with self.lock:
            config = self.current(tenant_id)
            found = config.scope(scope) if scope is not None else None
            wanted = RoleAssignment(client_id, canonical, found.name if found else None)
            if (scope is not None and found is None) or wanted not in config.assignments:
                raise _not_found(wanted.name if scope is None else f"{wanted.role} ({scope})")
            remaining = tuple(a for a in config.assignments if a != wanted)
            self._commit(tenant_id, RbacConfig(config.scopes, remaining), now)
        return wanted


def _scope(name: str, recipient_filter: str) -> ManagementScope:
    if not isinstance(name, str) or not name.strip():
        raise RbacError(400, "InvalidName", "The management scope needs a name.")
    try:
        predicate = compile_filter(recipient_filter)
    except FilterError as exc:
        raise RbacError(400, "InvalidRecipientFilter", f"RecipientRestrictionFilter: {exc}") from None
    return ManagementScope(name.strip(), recipient_filter, predicate)


def _covers(config: RbacConfig, assignment: RoleAssignment, attrs: dict[str, str]) -> bool:
    if assignment.scope is None:
        return True
    scope = config.scope(assignment.scope)
    return scope is not None and scope.predicate(attrs)
