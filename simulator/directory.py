"""The simulated directory: tenants, users and room mailboxes, app registrations, and mailbox delegation.

Identity (sign-in, consent, tokens) and Graph (who may open which mailbox) both read this model.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

# Microsoft's real tenant ID for personal (MSA) accounts.
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"

# signInAudience values of an app registration, as in the Azure portal's "Supported account types".
AUDIENCE_MY_ORG = "AzureADMyOrg"  # single tenant
AUDIENCE_MULTI_ORG = "AzureADMultipleOrgs"  # "organizations"
AUDIENCE_ORG_AND_PERSONAL = "AzureADandPersonalMicrosoftAccount"  # "common"
AUDIENCE_PERSONAL = "PersonalMicrosoftAccount"  # "consumers"
AUDIENCES = (AUDIENCE_MY_ORG, AUDIENCE_MULTI_ORG, AUDIENCE_ORG_AND_PERSONAL, AUDIENCE_PERSONAL)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Tenant:
    id: str
    name: str
    domain: str  # e.g. "contoso.onmicrosoft.com"
    personal: bool = False  # True only for the consumers (MSA) tenant
    # None: users may consent themselves. "65001" or "90094": the tenant requires administrator approval,
    # reported with that AADSTS code (unless an admin already consented for the app, see `admin_consented`).
    admin_consent_required: str | None = None
    admin_consented: set[str] = field(default_factory=set)  # client IDs an administrator approved


@dataclass
class User:
    id: str  # object ID
    tenant_id: str
    address: str  # UPN and primary SMTP address
    display_name: str
    kind: str = "user"  # "user" or "room"
    enabled: bool = True


@dataclass
class ClientSecret:
    value: str
    expires_at: float | None = None  # epoch seconds on the simulator clock; None = never


@dataclass
class AppRegistration:
    client_id: str
    tenant_id: str  # home tenant
    display_name: str
    sign_in_audience: str = AUDIENCE_MULTI_ORG
    redirect_uris: list[str] = field(default_factory=list)
    secrets: list[ClientSecret] = field(default_factory=list)
    # Application permissions (app roles) an administrator granted, e.g. "Calendars.ReadWrite": the scopes of
    # app-only (client credentials) tokens.
    application_permissions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MailboxGrant:
    """A user's access to another mailbox: "full_access" (delegated mailbox) or "editor" (calendar shared)."""

    grantee_id: str
    mailbox_id: str
    permission: str = "full_access"


class Directory:
    """All directory objects, guarded by one lock. Lookups by address are case-insensitive."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.users: dict[str, User] = {}
        self.apps: dict[str, AppRegistration] = {}
        self.grants: set[MailboxGrant] = set()
        self.add_tenant("Personal Microsoft accounts", "outlook.com", tenant_id=CONSUMERS_TENANT_ID, personal=True)

    def add_tenant(
        self,
        name: str,
        domain: str,
        *,
        tenant_id: str | None = None,
        personal: bool = False,
        admin_consent_required: str | None = None,
    ) -> Tenant:
        with self.lock:
            tenant = Tenant(tenant_id or new_id(), name, domain, personal, admin_consent_required)
            self.tenants[tenant.id] = tenant
            return tenant

    def add_user(
        self, tenant_id: str, address: str, display_name: str, *, kind: str = "user", user_id: str | None = None
    ) -> User:
        with self.lock:
            if tenant_id not in self.tenants:
                raise KeyError(f"unknown tenant {tenant_id}")
            if self.find_user(address) is not None:
                raise ValueError(f"address already used: {address}")
            user = User(user_id or new_id(), tenant_id, address, display_name, kind)
            self.users[user.id] = user
            return user

    def add_app(
        self,
        tenant_id: str,
        display_name: str,
        *,
        client_id: str | None = None,
        sign_in_audience: str = AUDIENCE_MULTI_ORG,
        redirect_uris: list[str] | None = None,
        secrets: list[ClientSecret] | None = None,
        application_permissions: list[str] | None = None,
    ) -> AppRegistration:
        if sign_in_audience not in AUDIENCES:
            raise ValueError(f"sign_in_audience must be one of {AUDIENCES}")
        with self.lock:
            app = AppRegistration(
                client_id or new_id(), tenant_id, display_name, sign_in_audience,
                list(redirect_uris or []), list(secrets or []), list(application_permissions or []),
            )
            self.apps[app.client_id] = app
            return app

    def grant_mailbox(self, grantee_id: str, mailbox_id: str, permission: str = "full_access") -> MailboxGrant:
        with self.lock:
            grant = MailboxGrant(grantee_id, mailbox_id, permission)
            self.grants.add(grant)
            return grant

    def find_user(self, id_or_address: str) -> User | None:
        with self.lock:
            if id_or_address in self.users:
                return self.users[id_or_address]
            wanted = id_or_address.lower()
            return next((u for u in self.users.values() if u.address.lower() == wanted), None)

    def can_access(self, user_id: str, mailbox_id: str) -> bool:
        """A user reaches their own mailbox, and another only through a grant."""
        if user_id == mailbox_id:
            return True
        with self.lock:
            return any(g.grantee_id == user_id and g.mailbox_id == mailbox_id for g in self.grants)
