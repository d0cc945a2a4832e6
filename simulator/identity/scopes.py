"""Scope strings as Microsoft accepts them: Graph permissions with or without the resource prefix, plus the
OpenID Connect scopes that are not permissions of any resource.

Graph checks permissions by short name ("Calendars.ReadWrite"), so tokens and consents store that form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
GRAPH_RESOURCE = "https://graph.microsoft.com"
_GRAPH_PREFIXES = (GRAPH_RESOURCE + "/", "00000003-0000-0000-c000-000000000000/")
# The simulator is also Graph at its own loopback address: apps derive the resource from GRAPH_BASE_URL, as
# they must for national clouds (graph.microsoft.us, ...), so their scopes name the simulator's origin.
_LOOPBACK_RESOURCE = re.compile(r"^https://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?/", re.IGNORECASE)


def split(scope: str | None) -> list[str]:
    return [s for s in (scope or "").split() if s]


def short(scope: str) -> str:
    """`https://graph.microsoft.com/User.Read` -> `User.Read`; OIDC scopes and others unchanged."""
    lowered = scope.lower()
    for prefix in _GRAPH_PREFIXES:
        if lowered.startswith(prefix):
            return scope[len(prefix):]
    loopback = _LOOPBACK_RESOURCE.match(scope)
    if loopback:
        return scope[loopback.end():]
    return scope


def permissions(scopes: Iterable[str]) -> frozenset[str]:
    """The resource permissions among `scopes` (what consent and access tokens are about)."""
    return frozenset(short(s) for s in scopes if s.lower() not in OIDC_SCOPES)


def oidc(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset(s.lower() for s in scopes if s.lower() in OIDC_SCOPES)


def covers(granted: Iterable[str], requested: Iterable[str]) -> bool:
    """Permission names are case-insensitive at Microsoft."""
    have = {g.lower() for g in granted}
    return all(r.lower() in have for r in requested)


# Microsoft Graph application permissions (app roles) an administrator can grant in the simulator: the ones this
# product and its tests touch, by the names of https://learn.microsoft.com/graph/permissions-reference. Delegated-
# only names (e.g. Calendars.ReadWrite.Shared) are not app roles and are refused.
GRAPH_APP_ROLES = frozenset({
    "Calendars.Read", "Calendars.ReadBasic.All", "Calendars.ReadWrite",
    "Place.Read.All", "Place.ReadWrite.All",
    "User.Read.All", "User.ReadBasic.All", "Directory.Read.All", "Group.Read.All",
    "Mail.Read", "Mail.ReadBasic", "Mail.ReadBasic.All", "Mail.ReadWrite", "Mail.Send",
    "MailboxSettings.Read", "MailboxSettings.ReadWrite", "Contacts.Read", "Contacts.ReadWrite",
})


# Delegated Graph permissions that only an administrator can consent to ("Admin consent required: Yes" in
# https://learn.microsoft.com/graph/permissions-reference): a user's own consent never covers them, so a sign-in
# that asks for one before an administrator approved the app stops at "Need admin approval".
ADMIN_ONLY_DELEGATED = frozenset(p.lower() for p in (
    "Place.Read.All", "Place.ReadWrite.All", "User.Read.All", "Directory.Read.All", "Group.Read.All",
))


def admin_only(permissions_: Iterable[str]) -> set[str]:
    """The permissions among `permissions_` that need an administrator's consent."""
    return {p for p in permissions_ if p.lower() in ADMIN_ONLY_DELEGATED}
