"""The simulated directory: tenants, users and room mailboxes, room lists, app registrations with their service
principals and per-tenant application permissions, and mailbox delegation.

Identity (sign-in, consent, tokens) and Graph (who may open which mailbox) both read this model. Exchange Online's
RBAC for Applications (management scopes and role assignments) lives in simulator/rbac.py, per tenant.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from simulator.rbac import Rbac

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
    # Client IDs with a service principal (enterprise application) here: the home tenant's registration, and any
    # tenant where an administrator or a user consented. Client credentials need one ("Application ... was not
    # found in the directory" otherwise), a user consent creates one:
    # https://learn.microsoft.com/entra/identity/enterprise-apps/grant-consent-single-user
    service_principals: set[str] = field(default_factory=set)
    # Application permissions (Microsoft Graph app roles) an administrator of THIS tenant granted, per client ID:
    # the `roles` of the app's client-credentials tokens for this tenant, and nowhere else.
    # https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
    app_roles: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Place:
    """What the Places API shows of a room mailbox (Exchange's Set-Place attributes), Graph's `room` resource:
    https://learn.microsoft.com/graph/api/resources/room"""

    capacity: int | None = None
    building: str | None = None
    floor_number: int | None = None
    floor_label: str | None = None
    label: str | None = None
    nickname: str | None = None
    phone: str | None = None
    is_wheelchair_accessible: bool = False
    booking_type: str = "standard"  # "standard" or "reserved"
    tags: list[str] = field(default_factory=list)
    audio_device_name: str | None = None
    video_device_name: str | None = None
    display_device_name: str | None = None
    address: dict[str, Any] | None = None  # physicalAddress: street, city, state, postalCode, countryOrRegion
    geo_coordinates: dict[str, Any] | None = None  # outlookGeoCoordinates: latitude, longitude, ...


@dataclass
class User:
    id: str  # object ID
    tenant_id: str
    address: str  # UPN and primary SMTP address
    display_name: str
    kind: str = "user"  # "user" or "room"
    enabled: bool = True
    # Exchange recipient attributes a management scope can filter on (CustomAttribute1..15) and the GAL flag
    # (HiddenFromAddressListsEnabled), with their history so RBAC's propagation delay sees them as they were.
    attributes: dict[str, Any] = field(default_factory=dict)
    attribute_history: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    place: Place | None = None  # rooms only

    @property
    def recipient_type_details(self) -> str:
        return "RoomMailbox" if self.kind == "room" else "UserMailbox"


@dataclass
class RoomList:
    """An Exchange room list (a distribution group of rooms), Graph's `roomList`:
    https://learn.microsoft.com/graph/api/resources/roomlist"""

    id: str
    tenant_id: str
    address: str
    display_name: str
    room_ids: list[str] = field(default_factory=list)


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
    # The application permissions the registration asks for (its "API permissions", requiredResourceAccess), e.g.
    # "Calendars.ReadWrite". They are granted per tenant (Tenant.app_roles): in the home tenant when the app is
    # created (the portal's "Grant admin consent for <home tenant>"), elsewhere by that tenant's admin consent.
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
        self.room_lists: dict[str, RoomList] = {}
        self.rbac = Rbac()  # Exchange Online RBAC for Applications, per tenant
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
            if self.find_user(address) is not None or self.find_room_list(address) is not None:
                raise ValueError(f"address already used: {address}")
            user = User(user_id or new_id(), tenant_id, address, display_name, kind)
            if kind == "room":
                user.place = Place()
            user.attribute_history.append((0.0, {}))
            self.users[user.id] = user
            return user

    def set_attributes(self, user: User, changes: dict[str, Any], now: float) -> dict[str, Any]:
        """Change recipient attributes (None or "" clears one); the history keeps what was true when."""
        with self.lock:
            merged = dict(user.attributes)
            for name, value in changes.items():
                if value is None or value == "":
                    merged.pop(name, None)
                else:
                    merged[name] = value
            user.attributes = merged
            user.attribute_history.append((now, dict(merged)))
            return dict(merged)

    def add_room_list(self, tenant_id: str, address: str, display_name: str, room_ids: list[str],
                      *, list_id: str | None = None) -> RoomList:
        with self.lock:
            if self.find_user(address) is not None or self.find_room_list(address) is not None:
                raise ValueError(f"address already used: {address}")
            room_list = RoomList(list_id or new_id(), tenant_id, address, display_name, list(room_ids))
            self.room_lists[room_list.id] = room_list
            return room_list

    def find_room_list(self, id_or_address: str) -> RoomList | None:
        with self.lock:
            if id_or_address in self.room_lists:
                return self.room_lists[id_or_address]
            wanted = id_or_address.lower()
            return next((r for r in self.room_lists.values() if r.address.lower() == wanted), None)

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
            home = self.tenants[tenant_id]
            home.service_principals.add(app.client_id)
            home.app_roles[app.client_id] = set(app.application_permissions)
            return app

    def grant_app_roles(self, tenant_id: str, client_id: str, roles: set[str]) -> set[str]:
        """An administrator of the tenant granted application permissions (creating the service principal)."""
        with self.lock:
            tenant = self.tenants[tenant_id]
            tenant.service_principals.add(client_id)
            granted = tenant.app_roles.setdefault(client_id, set())
            granted |= roles
            return set(granted)

    def revoke_app_roles(self, tenant_id: str, client_id: str, roles: set[str]) -> set[str]:
        with self.lock:
            granted = self.tenants[tenant_id].app_roles.setdefault(client_id, set())
            granted -= roles
            return set(granted)

    def app_roles(self, tenant_id: str, client_id: str) -> frozenset[str]:
        with self.lock:
            tenant = self.tenants.get(tenant_id)
            return frozenset(tenant.app_roles.get(client_id, set())) if tenant else frozenset()

    def has_service_principal(self, tenant_id: str, client_id: str) -> bool:
        with self.lock:
            tenant = self.tenants.get(tenant_id)
            return tenant is not None and client_id in tenant.service_principals

    def add_service_principal(self, tenant_id: str, client_id: str) -> None:
        with self.lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is not None:
                tenant.service_principals.add(client_id)

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
