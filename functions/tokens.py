"""Token health: the daily sweep (timer) fans out one refresh per due connection through a queue."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import runtime

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(schedule="%TOKEN_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False)
def token_sweep(timer: func.TimerRequest) -> None:
    runtime.services().token_health.sweep()


@bp.queue_trigger(arg_name="message", queue_name="token-refresh", connection="AzureWebJobsStorage")
def token_refresh(message: func.QueueMessage) -> None:
    try:
        body = json.loads(message.get_body())
    except ValueError:
        log.error("token-refresh message %s is not JSON; dropped", message.id)
        return
    outcome = runtime.services().token_health.refresh(body)
    log.info("token refresh %s/%s:%s -> %s", body.get("system"), body.get("kind"), body.get("id"), outcome)
