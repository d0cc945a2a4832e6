"""Authorization: the host app starts it (function key); the browser follows /oauth/start and comes back to
/oauth/callback (both anonymous: Microsoft and browsers call them)."""

from __future__ import annotations

import html

import azure.functions as func

from shared import runtime
from shared.http import endpoint, json_response, read_json, route_param

bp = func.Blueprint()

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@bp.route(route="systems/{system}/connections/{kind}/{id}/authorize", methods=["POST"])
@endpoint
def authorize(req: func.HttpRequest) -> func.HttpResponse:
    body = read_json(req)
    started = runtime.services().oauth.begin(route_param(req, "system"), route_param(req, "kind"),
                                             route_param(req, "id"), body)
    return json_response(started, 201)


@bp.route(route="oauth/start", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def oauth_start(req: func.HttpRequest) -> func.HttpResponse:
    location, failed = runtime.services().oauth.start_url(req.params.get("state"))
    if location is not None:
        return redirect(location)
    back = failed.redirect_location() if failed else None
    if back:
        return redirect(back)
    return page(failed.outcome if failed else "flow_invalid", failed.message if failed else "", 400)


@bp.route(route="oauth/callback", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def oauth_callback(req: func.HttpRequest) -> func.HttpResponse:
    # Microsoft posts the response (response_mode=form_post); a query-string response is accepted too.
    fields = dict(req.form) if req.method == "POST" else dict(req.params)
    result = runtime.services().oauth.complete({k: str(v) for k, v in fields.items()})
    location = result.redirect_location()
    if location:
        return redirect(location, 303)
    return page(result.outcome, result.message, 200 if result.outcome == "connected" else 400)


@bp.route(route="oauth/result", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def oauth_result(req: func.HttpRequest) -> func.HttpResponse:
    """A plain landing page for integrators without one of their own (and the local demo): it shows the
    outcome the callback sent, for known outcome codes only, naming the accounts of a `wrong_account`."""
    from shared.oauth import OUTCOME_MESSAGES, outcome_message

    outcome = req.params.get("outcome", "")
    if outcome not in OUTCOME_MESSAGES:
        return page("unknown", "No authorization outcome to show.", 400)
    message = outcome_message(outcome, req.params.get("account"), req.params.get("expected_account"))
    return page(outcome, message, 200 if outcome == "connected" else 400)


def redirect(location: str, status: int = 302) -> func.HttpResponse:
    return func.HttpResponse(status_code=status, headers={**PAGE_HEADERS, "Location": location})


def page(outcome: str, message: str, status: int) -> func.HttpResponse:
    """A readable page for when there is nowhere safe to send the browser back to."""
    title = html.escape("Connected" if outcome == "connected" else "Outlook authorization did not complete")
    text, code = html.escape(message), html.escape(outcome)
    body = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
        "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
        f"<h1>{title}</h1><p id='message'>{text}</p><p><small>Outcome: <code id='outcome'>{code}</code></small></p>"
        "</body></html>"
    )
    return func.HttpResponse(body, status_code=status, mimetype="text/html", charset="utf-8", headers=PAGE_HEADERS)
