"""Who may sign in where: the tenant path segment, the app's supported account types, and the account.

Microsoft applies these rules in two steps, and so does the simulator: some refuse the request before anyone
signs in (the app cannot be used on this endpoint at all), the rest refuse one account after it is chosen.

Either way Microsoft shows its own error page and does not send the browser back to the app, so the app never
learns of it (authorize.py raises these as error pages):
- AADSTS50020 (account not in the tenant), shown as "Sorry, but we're having trouble signing you in"
  with Request Id / Correlation Id ("the sign-in fails, and the following error message is displayed"):
  https://learn.microsoft.com/troubleshoot/azure/active-directory/error-code-aadsts50020-user-account-identity-provider-does-not-exist
  and e.g. https://github.com/MicrosoftDocs/azure-docs/issues/57031
- "unauthorized_client: The client does not exist or is not enabled for consumers", a login.live.com page
  headed "We're unable to complete your request":
  https://github.com/microsoftgraph/msgraph-sample-nodeexpressapp/issues/152
- AADSTS50194 (single-tenant app on /common or /organizations): an error page in
  https://github.com/MicrosoftDocs/azure-docs/issues/19346; some clients see it redirected instead
  (https://github.com/syncweek-react-aad/react-aad/issues/250), so the simulator takes the case an app cannot
  handle. 9002331 (personal-only app off /consumers) is treated the same way.
- AADSTS500200 (a personal account typed on a work-or-school-only endpoint): an error page,
  e.g. https://github.com/railsgirls/guides.railsgirls.com/issues/521
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.directory import (
    AUDIENCE_MY_ORG,
    AUDIENCE_ORG_AND_PERSONAL,
    AUDIENCE_PERSONAL,
    CONSUMERS_TENANT_ID,
    AppRegistration,
    Directory,
    Tenant,
    User,
)
from simulator.identity import errors
from simulator.identity.errors import AadError

Kind = Literal["common", "organizations", "consumers", "tenant"]
_MULTIPLEXERS: dict[str, Kind] = {"common": "common", "organizations": "organizations", "consumers": "consumers"}


@dataclass(frozen=True)
class Authority:
    """A resolved `{tenant}` path segment. `tenant` is set for a tenant ID or domain, and for `consumers`
    (the personal-accounts tenant)."""

    segment: str
    kind: Kind
    tenant: Tenant | None

    @property
    def path_segment(self) -> str:
        """What the discovery document puts in endpoint URLs: Microsoft answers with the tenant's GUID even
        when it was asked by domain, and keeps the multiplexer names as they are."""
        if self.kind == "tenant" and self.tenant is not None:
            return self.tenant.id
        return self.kind

    @property
    def directory_name(self) -> str:
        return self.tenant.name if self.tenant else self.segment


def resolve(directory: Directory, segment: str) -> Authority | None:
    lowered = segment.lower()
    if lowered in _MULTIPLEXERS:
        kind = _MULTIPLEXERS[lowered]
        tenant = directory.tenants.get(CONSUMERS_TENANT_ID) if kind == "consumers" else None
        return Authority(segment, kind, tenant)
    with directory.lock:
        tenant = directory.tenants.get(lowered) or next(
            (t for t in directory.tenants.values() if t.domain.lower() == lowered), None
        )
    if tenant is None:
        return None
    return Authority(segment, "consumers" if tenant.personal else "tenant", tenant)


def is_personal(directory: Directory, user: User) -> bool:
    tenant = directory.tenants.get(user.tenant_id)
    return bool(tenant and tenant.personal)


def check_app(authority: Authority, app: AppRegistration) -> AadError | None:
    """Refusals that do not depend on the account: the app is not usable through this endpoint."""
    audience = app.sign_in_audience
    if audience == AUDIENCE_PERSONAL:
        return None if authority.kind == "consumers" else errors.personal_only_app(app.client_id, app.display_name)
    if authority.kind == "consumers" and audience != AUDIENCE_ORG_AND_PERSONAL:
        return errors.not_enabled_for_consumers()
    if audience == AUDIENCE_MY_ORG and authority.kind in ("common", "organizations"):
        return errors.single_tenant_on_multi_tenant_endpoint(app.client_id, app.display_name)
    return None


def app_visible_in(authority: Authority, app: AppRegistration) -> bool:
    """A single-tenant app exists only in its home tenant: elsewhere it is "not found in the directory"."""
    if app.sign_in_audience == AUDIENCE_MY_ORG and authority.kind == "tenant":
        return authority.tenant is not None and authority.tenant.id == app.tenant_id
    return True


def sign_in_candidates(directory: Directory, authority: Authority, domain_hint: str | None = None) -> list[User]:
    """Accounts the sign-in page offers. A tenant-specific endpoint offers every account, as Microsoft's page
    lets anyone type an address, so that outsiders meet AADSTS50020 after choosing.

    `domain_hint=organizations` or `consumers` skips Microsoft's email-based discovery and goes straight to
    work-or-school or to personal sign-in ("If the tid claim value is 9188040d-..., use domain_hint=consumers.
    Otherwise, use domain_hint=organizations"):
    https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#request-an-authorization-code"""
    with directory.lock:
        users = [u for u in directory.users.values() if u.kind == "user" and u.enabled]
    hint = (domain_hint or "").lower()
    if authority.kind == "organizations" or (authority.kind == "common" and hint == "organizations"):
        return [u for u in users if not is_personal(directory, u)]
    if authority.kind == "consumers" or (authority.kind == "common" and hint == "consumers"):
        return [u for u in users if is_personal(directory, u)]
    return users


def check_typed(directory: Directory, authority: Authority, user: User) -> AadError | None:
    """An existing account typed where the page would not offer it. A personal account on the work-or-school
    endpoint gets AADSTS500200's error page; anything else is just not found (the page asks again)."""
    if authority.kind == "organizations" and is_personal(directory, user):
        return errors.personal_account_not_supported(user.address)
    return None


def check_account(directory: Directory, authority: Authority, app: AppRegistration, user: User) -> AadError | None:
    """Refusals of one account on this endpoint for this app."""
    personal = is_personal(directory, user)
    if authority.kind == "tenant" and authority.tenant is not None and user.tenant_id != authority.tenant.id:
        provider = "live.com" if personal else f"https://sts.windows.net/{user.tenant_id}/"
        return errors.user_not_in_tenant(
            user.address, provider, authority.tenant.name, app.client_id, app.display_name
        )
    if authority.kind == "organizations" and personal:
        return errors.personal_account_not_supported(user.address)
    if authority.kind == "consumers" and not personal:
        return errors.personal_only_app(app.client_id, app.display_name)
    if personal and app.sign_in_audience not in (AUDIENCE_ORG_AND_PERSONAL, AUDIENCE_PERSONAL):
        return errors.not_enabled_for_consumers()
    if not personal and app.sign_in_audience == AUDIENCE_PERSONAL:
        return errors.personal_only_app(app.client_id, app.display_name)
    if app.sign_in_audience == AUDIENCE_MY_ORG and user.tenant_id != app.tenant_id:
        tenant = directory.tenants.get(app.tenant_id)
        provider = "live.com" if personal else f"https://sts.windows.net/{user.tenant_id}/"
        return errors.user_not_in_tenant(
            user.address, provider, tenant.name if tenant else app.tenant_id, app.client_id, app.display_name
        )
    return None

