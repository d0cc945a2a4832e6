"""Microsoft identity platform error codes (AADSTS) and what they mean for this product.

Token endpoint errors carry `error_codes` (ints) and an `error_description` starting "AADSTSnnnn:"; authorize
redirects carry only `error` and `error_description`. Both are reduced to one code string ("AADSTS65001") and
then to an outcome the host app can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_CODE_IN_TEXT = re.compile(r"AADSTS(\d+)")

# Credentials of the app registration itself are wrong: an admin must fix the integration.
CREDENTIAL_CODES = {
    "AADSTS7000215": "The client secret is wrong (AADSTS7000215): copy the secret's Value, not its Secret ID.",
    "AADSTS7000222": "The client secret has expired (AADSTS7000222): create a new one and save it here.",
    "AADSTS7000218": "No client secret was sent (AADSTS7000218).",
    "AADSTS700016": ("The application ID was not found in the directory (AADSTS700016). A brand-new app "
                     "registration can take a few minutes to propagate: wait and try again; otherwise check the "
                     "application ID and the supported account type."),
    "AADSTS90002": "The tenant was not found (AADSTS90002): check the tenant ID.",
    "AADSTS50059": "No tenant could be identified for the app (AADSTS50059).",
}

# A connection's grant is dead: the person must sign in again.
REAUTH_CODES = {
    "AADSTS700082": "The authorization expired after 90 days without use (AADSTS700082).",
    "AADSTS70008": "The authorization expired or was revoked (AADSTS70008).",
    "AADSTS50173": "The authorization was revoked, e.g. after a password change (AADSTS50173).",
    "AADSTS65001": "Consent for the app was withdrawn or is missing (AADSTS65001).",
    "AADSTS50057": "The Microsoft account is disabled (AADSTS50057).",
    "AADSTS50076": "Multi-factor authentication is now required (AADSTS50076).",
    "AADSTS50079": "Multi-factor authentication enrollment is required (AADSTS50079).",
    "AADSTS53003": "Access was blocked by Conditional Access (AADSTS53003).",
    "AADSTS70000": "The refresh token is no longer valid (AADSTS70000).",
    "AADSTS9002313": "The refresh token is not valid (AADSTS9002313).",
}

ADMIN_APPROVAL_CODES = {"AADSTS65001", "AADSTS90094", "AADSTS90095"}
WRONG_ACCOUNT_CODES = {"AADSTS50194", "AADSTS50020", "AADSTS9002331", "AADSTS500200"}
CONSENT_DENIED_CODES = {"AADSTS65004"}


def code_of(error: Mapping[str, Any]) -> str | None:
    """The AADSTS code of an error body or redirect, as "AADSTSnnnn"."""
    codes = error.get("error_codes")
    if isinstance(codes, list) and codes:
        return f"AADSTS{codes[0]}"
    match = _CODE_IN_TEXT.search(str(error.get("error_description") or ""))
    return f"AADSTS{match.group(1)}" if match else None


def authorize_outcome(error: str, code: str | None) -> str:
    """The callback's outcome for an error Microsoft sent back to the redirect URI."""
    if code in ADMIN_APPROVAL_CODES:
        return "admin_approval_required"
    if code in WRONG_ACCOUNT_CODES or error == "unauthorized_client":
        return "wrong_account_type"
    if code in CONSENT_DENIED_CODES or error == "access_denied":
        return "consent_denied"
    if code in CREDENTIAL_CODES:
        return "credentials_invalid"
    return "authorization_failed"


def is_credential_problem(code: str | None) -> bool:
    return code in CREDENTIAL_CODES


def is_reauth_problem(code: str | None, error: str | None = None) -> bool:
    """A refresh failure that only a new sign-in can cure (as opposed to an outage to retry)."""
    return code in REAUTH_CODES or error in ("invalid_grant", "interaction_required")


def describe(code: str | None, fallback: str) -> str:
    if code is None:
        return fallback
    return CREDENTIAL_CODES.get(code) or REAUTH_CODES.get(code) or f"{fallback} ({code})"
