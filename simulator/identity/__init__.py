"""The Microsoft identity platform side: OIDC discovery, sign-in and consent, the v2.0 token endpoint."""
