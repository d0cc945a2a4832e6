"""The Azure Functions app (Python v2 programming model): creates the app and registers the blueprints.

No I/O and no heavy SDK imports here: the worker imports this module on every cold start.
"""

import azure.functions as func

from functions import health

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_blueprint(health.bp)
