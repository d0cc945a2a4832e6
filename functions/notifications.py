"""Microsoft Graph change notifications (anonymous: Graph calls them): the validation handshake, change and lifecycle
notifications (shared/notifications.py); lifecycle work from the `subscription-work` queue and the hourly
subscription maintenance (shared/subscriptions.py)."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import runtime
from shared.errors import ValidationFailed
from shared.http import endpoint

bp = func.Blueprint()
log = logging.getLogger(__name__)
ANONYMOUS = func.AuthLevel.ANONYMOUS
TEXT_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'"}


@bp.route(route="notifications/changes", methods=["POST"], auth_level=ANONYMOUS)
@endpoint
def graph_change_notifications(req: func.HttpRequest) -> func.HttpResponse:
    return _receive(req)


@bp.route(route="notifications/lifecycle", methods=["POST"], auth_level=ANONYMOUS)
@endpoint
def graph_lifecycle_notifications(req: func.HttpRequest) -> func.HttpResponse:
    return _receive(req)


def _receive(req: func.HttpRequest) -> func.HttpResponse:
    from shared.notifications import validation_answer

    token = req.params.get("validationToken")
    if token is not None:  # the handshake needs no storage: it answers even before the services are built
        return func.HttpResponse(validation_answer(token), status_code=200, mimetype="text/plain", charset="utf-8",
                                 headers=TEXT_HEADERS)
    runtime.services().notifications.receive(req.get_body() or b"", req.headers.get("content-type"))
    return func.HttpResponse(status_code=202, headers=TEXT_HEADERS)


@bp.queue_trigger(arg_name="message", queue_name="subscription-work", connection="AzureWebJobsStorage")
def subscription_work(message: func.QueueMessage) -> None:
    try:
        body = json.loads(message.get_body())
        outcome = runtime.services().subscriptions.process(body)
    except (ValueError, ValidationFailed):
        log.error("subscription-work message %s is malformed; dropped", message.id)
        return
    log.info("subscription-work %s %s -> %s", body.get("event"), body.get("subscription_id"), outcome)


@bp.timer_trigger(schedule="%SUBSCRIPTION_RENEW_SCHEDULE%", arg_name="timer", run_on_startup=False)
def subscription_maintenance(timer: func.TimerRequest) -> None:
    runtime.services().subscriptions.maintain()
