"""Who is calling and which mailbox they may touch, with Graph's permission model for calendars.

Delegated tokens (a signed-in user): the user's own mailbox needs `Calendars.Read` to read and
`Calendars.ReadWrite` to write; another mailbox (a room) additionally needs a mailbox grant in the directory and
`Calendars.Read.Shared` / `Calendars.ReadWrite.Shared`. Without them Exchange answers 403 `ErrorAccessDenied`;
that is the failure the product must turn into "reauthorize with the shared scope" or "ask for delegation".

App-only tokens (client credentials; the product's recommended mode for rooms) have two sources of mailbox
access, and Exchange grants the union of both:
- the token's roles, i.e. the Entra application permissions an administrator of the token's tenant granted:
  `Calendars.Read` / `Calendars.ReadWrite` reach every mailbox of that tenant
  (https://learn.microsoft.com/graph/permissions-reference#calendarsreadwrite);
- Exchange Online RBAC for Applications: a role assignment such as "Application Calendars.ReadWrite" limited to
  the mailboxes of a management scope (simulator/rbac.py,
  https://learn.microsoft.com/exchange/permissions-exo/application-rbac), seen through its propagation delay.
A mailbox neither covers gets 403 `ErrorAccessDenied` "Access is denied. Check credentials and try again.", the
answer Exchange gives for a mailbox the app may not open (e.g.
https://github.com/microsoftgraph/microsoft-graph-docs/issues/3289).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.core import Simulator
from simulator.directory import User
from simulator.graph.errors import GraphError, access_denied, invalid_user, unauthenticated
from simulator.graph.http import GraphRequest
from simulator.tokens import AccessGrant

_PREFIXES = ("https://graph.microsoft.com/", "https://graph.microsoft.com//", "00000003-0000-0000-c000-000000000000/")


def _scopes(grant: AccessGrant) -> frozenset[str]:
    out = set()
    for scope in grant.scopes:
        s = scope.lower()
        for prefix in _PREFIXES:
            if s.startswith(prefix):
                s = s[len(prefix):]
        out.add(s)
    return frozenset(out)


@dataclass(frozen=True)
class Caller:
    grant: AccessGrant
    user: User | None  # the signed-in user; None for app-only tokens
    scopes: frozenset[str]

    @property
    def app_only(self) -> bool:
        return self.user is None

    @property
    def client_id(self) -> str:
        return self.grant.client_id

    def has(self, *any_of: str) -> bool:
        return any(s.lower() in self.scopes for s in any_of)


@dataclass(frozen=True)
class Access:
    mailbox: User
    can_write: bool


def authenticate(sim: Simulator, request: GraphRequest) -> Caller:
    header = request.header("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("Access token is empty.")
    grant = sim.tokens.lookup(token.strip())
    if grant is None:
        raise unauthenticated("Lifetime validation failed, the token is expired.")
    user = None
    if grant.user_id is not None:
        user = sim.directory.users.get(grant.user_id)
        if user is None or not user.enabled:
            raise unauthenticated("The user or administrator has not consented or the user is disabled.")
    return Caller(grant, user, _scopes(grant))


def mailbox_of(sim: Simulator, caller: Caller, who: str) -> User:
    """The mailbox a path names: "me" or /users/{id | userPrincipalName}."""
    if who.lower() == "me":
        if caller.user is None:
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        return caller.user
    user = sim.directory.find_user(who)
    if user is None or user.tenant_id != caller.grant.tenant_id:
        raise invalid_user(who)
    return user


def authorize(sim: Simulator, caller: Caller, mailbox: User, *, write: bool) -> Access:
    """Check calendar access to `mailbox`; answers whether the caller could also write (for `canEdit`)."""
    if caller.user is None:
        if mailbox.tenant_id != caller.grant.tenant_id:
            raise access_denied()
        scoped = {p.lower() for p in sim.directory.rbac.graph_permissions(
            caller.grant.tenant_id, caller.client_id, mailbox, sim.clock.time())}
        can_write = caller.has("Calendars.ReadWrite") or "calendars.readwrite" in scoped
        can_read = can_write or caller.has("Calendars.Read") or "calendars.read" in scoped
        if not can_read or (write and not can_write):
            raise access_denied()
        return Access(mailbox, can_write)
    if caller.user.id == mailbox.id:
        can_write = caller.has("Calendars.ReadWrite", "Calendars.ReadWrite.Shared")
        can_read = can_write or caller.has("Calendars.Read", "Calendars.Read.Shared")
    else:
        grant = _grant(sim, caller.user.id, mailbox.id)
        if grant is None:
            raise access_denied()
        can_write = grant != "reviewer" and caller.has("Calendars.ReadWrite.Shared")
        can_read = caller.has("Calendars.ReadWrite.Shared", "Calendars.Read.Shared")
    if not can_read or (write and not can_write):
        raise access_denied()
    return Access(mailbox, can_write)


def _grant(sim: Simulator, user_id: str, mailbox_id: str) -> str | None:
    """The permission of the user's grant on the mailbox ("full_access", "editor", "reviewer"), if any."""
    if not sim.directory.can_access(user_id, mailbox_id):
        return None
    with sim.directory.lock:
        perms = {g.permission for g in sim.directory.grants if g.grantee_id == user_id and g.mailbox_id == mailbox_id}
    return "full_access" if "full_access" in perms else ("editor" if "editor" in perms else next(iter(perms), None))


def can_see_details(sim: Simulator, caller: Caller, mailbox: User) -> bool:
    """getSchedule shows subject and location only to callers the calendar is shared with."""
    if caller.user is None:
        return mailbox.tenant_id == caller.grant.tenant_id
    return sim.directory.can_access(caller.user.id, mailbox.id)
