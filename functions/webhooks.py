"""Signed webhooks to the host app: each batch of changes a room pull publishes is POSTed from the
`webhook-delivery` queue (see shared/webhooks.py for the signature scheme, retries and alert)."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import runtime
from shared.errors import ValidationFailed

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="message", queue_name="webhook-delivery", connection="AzureWebJobsStorage")
def webhook_delivery(message: func.QueueMessage) -> None:
    try:
        body = json.loads(message.get_body())
    except ValueError:
        log.error("webhook-delivery message %s is not JSON; dropped", message.id)
        return
    try:
        outcome = runtime.services().webhooks.process(body)
    except ValidationFailed as exc:
        log.error("webhook-delivery message %s is malformed (%s); dropped", message.id, exc.message)
        return
    log.info("webhook-delivery %s/%s seq %s-%s -> %s", body.get("system"), body.get("space"), body.get("from_seq"),
             body.get("to_seq"), outcome)
