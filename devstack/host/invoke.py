"""Calling a user function the way the Python worker does, and the one log line per invocation.

The worker passes only the parameters the signature names (the trigger by its binding name, output bindings as
`func.Out`, `context`), runs `async def` functions on one long-lived event loop, and sends output bindings only
when the function succeeds. Request bodies, headers and query strings are never logged: they can carry secrets.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext

from devstack.host.catalog import RETURN, FunctionSpec
from devstack.host.config import resolve_settings

logger = logging.getLogger("devstack.host")
T = TypeVar("T")
QueueSend = Callable[[str, list[bytes]], None]


class FunctionFailed(Exception):
    """A user function raised (its exception is the `__cause__`); the invoker has already logged the traceback."""


class AsyncLoop:
    """One event loop for every async function, as in the worker.

    Clients an async function caches between invocations stay bound to the loop that created them; a fresh
    loop per call (asyncio.run) would break them on the second invocation.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="devstack-host-asyncio",
                                                daemon=True)
                self._thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


class _Out(func.Out[Any]):
    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(TraceContext):
    def __init__(self, invocation_id: str) -> None:
        self._parent = f"00-{uuid.UUID(invocation_id).hex}-{uuid.uuid4().hex[:16]}-00"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class _Context(func.Context):
    def __init__(self, invocation_id: str, spec: FunctionSpec) -> None:
        self._invocation_id = invocation_id
        self._spec = spec
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._spec.name

    @property
    def function_directory(self) -> str:
        return self._spec.directory

    @property
    def trace_context(self) -> TraceContext:
        return _TraceContext(self._invocation_id)

    @property
    def retry_context(self) -> RetryContext:
        return _RetryContext()


class Invoker:
    def __init__(self, specs: Iterable[FunctionSpec], env: Mapping[str, str], send: QueueSend | None) -> None:
        self._send = send
        self._loop = AsyncLoop()
        self._queues: dict[tuple[str, str], str] = {}
        for spec in specs:
            for binding in spec.outputs:
                if binding.type == "queue":
                    if send is None:
                        raise ValueError(f"function '{spec.name}' has a queue output binding but the host "
                                         "was given no storage connection string")
                    self._queues[spec.name, binding.name] = resolve_settings(
                        binding.queue_name, env, f"function '{spec.name}' queue output")

    def close(self) -> None:
        self._loop.close()

    def run(self, spec: FunctionSpec, trigger_value: Any, detail: str = "") -> func.HttpResponse | None:
        """Invoke once; returns the HTTP response for HTTP functions. Raises FunctionFailed, already logged."""
        invocation_id = str(uuid.uuid4())
        outs = {b.name: _Out() for b in spec.outputs if b.name != RETURN}
        kwargs: dict[str, Any] = {spec.trigger.name: trigger_value, **outs}
        kwargs.update({name: _Context(invocation_id, spec) for name in spec.context_params})
        started = time.perf_counter()
        extra = f", {detail}" if detail else ""
        try:
            call = spec.user_function(**kwargs)
            result = self._loop.run(call) if spec.is_async else call
            response = self._deliver(spec, result, outs)
        except Exception as exc:
            logger.error("Executed '%s' (Failed, trigger=%s%s, Id=%s, Duration=%dms)", spec.name, spec.kind, extra,
                         invocation_id, _ms(started), exc_info=True)
            raise FunctionFailed(spec.name) from exc
        if response is not None:
            extra += f", status={response.status_code}"
        logger.info("Executed '%s' (Succeeded, trigger=%s%s, Id=%s, Duration=%dms)", spec.name, spec.kind, extra,
                    invocation_id, _ms(started))
        return response

    def _deliver(self, spec: FunctionSpec, result: Any, outs: Mapping[str, _Out]) -> func.HttpResponse | None:
        response: func.HttpResponse | None = None
        for binding in spec.outputs:
            value = result if binding.name == RETURN else outs[binding.name].get()
            if binding.type == "http":
                response = _http_response(value)
            elif self._send is not None:
                messages = _queue_messages(value)
                if messages:
                    self._send(self._queues[spec.name, binding.name], messages)
        if spec.kind == "http" and response is None:
            response = _http_response(None)
        return response


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _http_response(value: Any) -> func.HttpResponse:
    if isinstance(value, func.HttpResponse):
        return value
    if isinstance(value, str):
        return func.HttpResponse(value)
    if value is None:
        return func.HttpResponse(status_code=204)
    raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(value).__name__}")


def _queue_messages(value: Any) -> list[bytes]:
    if value is None:
        return []
    items = [value] if isinstance(value, str | bytes | func.QueueMessage) else list(value)
    messages = []
    for item in items:
        if isinstance(item, str):
            messages.append(item.encode("utf-8"))
        elif isinstance(item, bytes):
            messages.append(item)
        elif isinstance(item, func.QueueMessage):
            messages.append(item.get_body())
        else:
            raise TypeError(f"a queue output must be str, bytes or func.QueueMessage, not {type(item).__name__}")
    return messages
