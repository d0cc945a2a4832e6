"""The functions a `FunctionApp` registers, read once through the same indexing API the Python worker uses."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import BindingDirection

TRIGGER_KINDS = {"httpTrigger": "http", "timerTrigger": "timer", "queueTrigger": "queue"}
# Output bindings the local host can honour; anything else is refused up front rather than silently dropped.
OUTPUT_TYPES = {"http", "queue"}
RETURN = "$return"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    kind: str  # "http" | "timer" | "queue"
    trigger: Any  # the azure.functions trigger binding (HttpTrigger, TimerTrigger, QueueTrigger)
    outputs: tuple[Any, ...]  # output bindings, by binding name or "$return"
    user_function: Callable[..., Any]
    directory: str
    context_params: tuple[str, ...]  # parameters that receive the invocation context

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


def enum_value(value: Any) -> Any:
    """azure.functions enums print their *name*; the host works with their values."""
    return getattr(value, "value", value)


def load_functions(app: func.FunctionApp) -> list[FunctionSpec]:
    """Index the app like the worker does.

    `get_functions()` remembers names between calls and then rejects its own functions as duplicates, so the
    memo is cleared before and after: the lead's code (or a test) may index the same app again.
    """
    app.functions_bindings = None
    try:
        functions = app.get_functions()
    finally:
        app.functions_bindings = None
    return [_spec(function) for function in functions]


def _spec(function: func.Function) -> FunctionSpec:
    name = function.get_function_name()
    trigger = function.get_trigger()
    if trigger is None or trigger.type not in TRIGGER_KINDS:
        kind = trigger.type if trigger is not None else "none"
        raise ValueError(f"function '{name}': trigger type '{kind}' is not supported by the local host")
    outputs = tuple(b for b in function.get_bindings() if b is not trigger)
    for binding in outputs:
        if binding.direction != BindingDirection.OUT.value or binding.type not in OUTPUT_TYPES:
            raise ValueError(f"function '{name}': binding '{binding.name}' of type '{binding.type}' is not supported")
    user_function = function.get_user_function()
    bound = {trigger.name, *(b.name for b in outputs if b.name != RETURN)}
    parameters = inspect.signature(user_function).parameters
    missing = sorted(bound - set(parameters))
    if missing:  # the worker refuses these at indexing too
        raise ValueError(f"function '{name}': bindings {missing} have no parameter of that name")
    context_params = []
    for param in parameters.values():
        if param.name in bound:
            continue
        if param.name == "context" or param.annotation in (func.Context, "func.Context", "Context"):
            context_params.append(param.name)
        elif param.default is inspect.Parameter.empty:
            raise ValueError(f"function '{name}': parameter '{param.name}' matches no binding")
    source = inspect.getsourcefile(user_function) or os.getcwd()
    return FunctionSpec(
        name=name,
        kind=TRIGGER_KINDS[trigger.type],
        trigger=trigger,
        outputs=outputs,
        user_function=user_function,
        directory=os.path.dirname(os.path.abspath(source)),
        context_params=tuple(context_params),
    )
