"""The Azure Functions app (Python v2 programming model): creates the app and registers the blueprints.

No I/O and no heavy SDK imports here: the worker imports this module on every cold start.
"""

import azure.functions as func

from functions import (
    alerts,
    connections,
    console,
    export,
    health,
    housekeeping,
    integration,
    notifications,
    oauth,
    pull,
    rooms,
    systems,
    tokens,
    webhooks,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (health.bp, systems.bp, integration.bp, oauth.bp, connections.bp, export.bp, pull.bp, alerts.bp,
                  tokens.bp, webhooks.bp, housekeeping.bp, notifications.bp, rooms.bp, console.bp):
    app.register_blueprint(blueprint)
