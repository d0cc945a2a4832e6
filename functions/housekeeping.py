"""Housekeeping timers: rows that outlived their purpose are deleted here, not on a request's path."""

from __future__ import annotations

import azure.functions as func

from shared import runtime

bp = func.Blueprint()


@bp.timer_trigger(schedule="%FLOW_PURGE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def pending_flow_purge(timer: func.TimerRequest) -> None:
    runtime.services().flow_purge.purge()
