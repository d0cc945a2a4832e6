"""A local Microsoft identity platform and Microsoft Graph simulator.

It speaks the real protocols over HTTPS so that `msal` and the app's Graph client run their real code paths
against it: for local runs without an Azure account, for integration tests, and for benchmarks that must
respect Graph's real limits. It is part of the developer experience, not a test double of our own modules.
"""
