"""Two-way sync of room calendars: the timer fans one pull per two-way space out through the `room-pull` queue;
the host reads what changed in Outlook from the feed (function key)."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import runtime
from shared.http import endpoint, json_response, route_param

bp = func.Blueprint()
log = logging.getLogger(__name__)
SPACE = "systems/{system}/connections/space/{id}"


@bp.timer_trigger(schedule="%PULL_SCHEDULE%", arg_name="timer", run_on_startup=False)
def room_pull_sweep(timer: func.TimerRequest) -> None:
    queued = runtime.services().pull.enqueue_all()
    log.info("room pull sweep: %d room(s) queued", queued)


@bp.queue_trigger(arg_name="message", queue_name="room-pull", connection="AzureWebJobsStorage")
def room_pull(message: func.QueueMessage) -> None:
    try:
        body = json.loads(message.get_body())
        system, space = str(body["system"]), str(body["id"])
    except (ValueError, KeyError):
        log.error("room-pull message %s is malformed; dropped", message.id)
        return
    result = runtime.services().pull.pull_from_queue(system, space, body)
    log.info("room pull %s/%s -> %s", system, space, result)


@bp.route(route=f"{SPACE}/external-events", methods=["GET"])
@endpoint
def external_events(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().pull.feed(route_param(req, "system"), route_param(req, "id"),
                                                      req.params.get("cursor"), req.params.get("limit")))


@bp.route(route=f"{SPACE}/external-events/backfill-creators", methods=["POST"])
@endpoint
def backfill_creators(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().pull.backfill_creators(route_param(req, "system"),
                                                                   route_param(req, "id")))
