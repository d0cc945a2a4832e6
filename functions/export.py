"""Export: items (bookings, shifts) as Outlook events, bulk export jobs, free/busy (host app, function key);
the bulk and retry work runs from the `export-work` queue."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import runtime
from shared.http import endpoint, json_response, read_json, route_param

bp = func.Blueprint()
log = logging.getLogger(__name__)
CONNECTION = "systems/{system}/connections/{kind}/{id}"


def _ids(req: func.HttpRequest) -> tuple[str, str, str]:
    return route_param(req, "system"), route_param(req, "kind"), route_param(req, "id")


@bp.route(route=f"{CONNECTION}/items/{{item}}", methods=["PUT"])
@endpoint
def put_item(req: func.HttpRequest) -> func.HttpResponse:
    body = read_json(req)
    result, status = runtime.services().export.put_item(*_ids(req), route_param(req, "item"), body)
    return json_response(result, status)


@bp.route(route=f"{CONNECTION}/items/{{item}}", methods=["GET"])
@endpoint
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().export.get_item(*_ids(req), route_param(req, "item")))


@bp.route(route=f"{CONNECTION}/items/{{item}}", methods=["DELETE"])
@endpoint
def cancel_item(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().export.cancel_item(*_ids(req), route_param(req, "item")))


@bp.route(route=f"{CONNECTION}/exports", methods=["POST"])
@endpoint
def start_export(req: func.HttpRequest) -> func.HttpResponse:
    body = read_json(req)
    return json_response(runtime.services().export.start_export(*_ids(req), body), 202)


@bp.route(route=f"{CONNECTION}/exports/{{job?}}", methods=["GET"])
@endpoint
def export_status(req: func.HttpRequest) -> func.HttpResponse:
    job = (req.route_params or {}).get("job")
    service = runtime.services().export
    return json_response(service.job_status(*_ids(req), job) if job else service.list_jobs(*_ids(req)))


@bp.route(route="systems/{system}/connections/user/{id}/freebusy", methods=["GET"])
@endpoint
def freebusy(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().freebusy.busy(
        route_param(req, "system"), route_param(req, "id"), req.params.get("start"), req.params.get("end")))


@bp.queue_trigger(arg_name="message", queue_name="export-work", connection="AzureWebJobsStorage")
def export_work(message: func.QueueMessage) -> None:
    try:
        body = json.loads(message.get_body())
    except ValueError:
        log.error("export-work message %s is not JSON; dropped", message.id)
        return
    outcome = runtime.services().export.process(body)
    log.info("export-work %s for %s/%s:%s -> %s", body.get("type"), body.get("system"), body.get("kind"),
             body.get("id"), outcome)


@bp.timer_trigger(schedule="%EXPORT_RETRY_SCHEDULE%", arg_name="timer", run_on_startup=False)
def export_retry_sweep(timer: func.TimerRequest) -> None:
    queued = runtime.services().export.drain_retries()
    if queued:
        log.info("export retry sweep: %d connection(s) queued", queued)
