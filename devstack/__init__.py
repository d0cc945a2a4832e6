"""The local stack: everything needed to run and test the function app on one machine with no Azure account.

Azurite for Table and Queue storage, a Key Vault-compatible endpoint with the App Service managed-identity
endpoint, the Microsoft identity platform and Graph simulator, and a local Functions host that serves the real
`FunctionApp` from `function_app.py`. Development tooling only: nothing here is deployed.
"""
