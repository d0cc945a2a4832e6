"""Routing for the identity platform side: every path the server does not give to Graph or the control API."""

from __future__ import annotations

from collections.abc import Callable

from werkzeug import Request, Response
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from simulator.core import Simulator
from simulator.identity import pages
from simulator.identity.authorize import authorize_endpoint
from simulator.identity.discovery import jwks, openid_configuration
from simulator.identity.keys import SigningKey
from simulator.identity.state import identity_state
from simulator.identity.token import token_endpoint
from simulator.identity.web import Ctx, html_response, json_response

Handler = Callable[[Request], Response]

_ROUTES = Map(
    [
        Rule("/", endpoint="root", methods=["GET"]),
        Rule("/error", endpoint="error", methods=["GET"]),
        Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="discovery", methods=["GET"]),
        Rule("/<tenant>/discovery/v2.0/keys", endpoint="keys", methods=["GET"]),
        Rule("/<tenant>/oauth2/v2.0/authorize", endpoint="authorize", methods=["GET", "POST"]),
        Rule("/<tenant>/oauth2/v2.0/token", endpoint="token", methods=["POST"]),
        Rule("/<tenant>/oauth2/v2.0/logout", endpoint="logout", methods=["GET", "POST"]),
    ],
    strict_slashes=False,
)


def _logout(request: Request) -> Response:
    """Sessions are not kept (every sign-in picks an account), so signing out only sends the browser on."""
    target = request.values.get("post_logout_redirect_uri")
    if target:
        response = Response(status=302)
        response.headers["Location"] = target
        return response
    return html_response(pages.simple_page("You signed out of your account", "It's a good idea to close all "
                                           "browser windows.", "signed-out"))


def make_identity_handler(sim: Simulator, key: SigningKey | None = None) -> Handler:
    state = identity_state(sim, key)

    def handle(request: Request) -> Response:
        adapter = _ROUTES.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as exc:
            return json_response({"error": exc.name.lower().replace(" ", "_"), "path": request.path},
                                 exc.code or 404)
        ctx = Ctx.for_request(sim, state, request)
        tenant = str(args.get("tenant", ""))
        if endpoint == "discovery":
            return openid_configuration(ctx, tenant)
        if endpoint == "keys":
            return jwks(ctx, tenant)
        if endpoint == "authorize":
            return authorize_endpoint(ctx, request, tenant)
        if endpoint == "token":
            return token_endpoint(ctx, request, tenant)
        if endpoint == "logout":
            return _logout(request)
        if endpoint == "error":
            code = request.args.get("code", "")
            return html_response(pages.simple_page(f"AADSTS{code}", "Error codes are listed at "
                                                   "https://learn.microsoft.com/entra/identity-platform/"
                                                   "reference-error-codes", "error-code"))
        return json_response({"service": "Microsoft identity platform and Graph simulator",
                              "discovery": f"{ctx.base_url}/common/v2.0/.well-known/openid-configuration"})

    return handle
