"""What the code uses, found by importing it: the settings it reads, its tables and its queues.

- Settings: every `get("NAME")` in shared/settings.py and every value documented in local.settings.example.json.
- Tables: the `table` of every `TableRepository` subclass defined in a module under the scanned packages.
- Queues: the queue of every queue trigger and queue output binding of the Function App (with `%SETTING%` parts
  resolved through app settings), plus every module-level string constant named `*_QUEUE` under the packages.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCANNED_PACKAGES = ("shared", "functions")
HOST_STORAGE = "AzureWebJobsStorage"

_SETTING_REFERENCE = re.compile(r"%([A-Za-z_][A-Za-z0-9_.:-]*)%")


def settings_read_by_code(settings_module: Path = REPO / "shared" / "settings.py") -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(settings_module.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return names


def settings_documented(example: Path = REPO / "local.settings.example.json") -> set[str]:
    return set(json.loads(example.read_text())["Values"])


def import_modules(packages: Iterable[str]) -> Iterator[ModuleType]:
    """Every module of every package (the packages themselves included), imported."""
    for package_name in packages:
        package = importlib.import_module(package_name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            yield importlib.import_module(info.name)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _in_packages(module_name: str, packages: Iterable[str]) -> bool:
    return any(module_name == p or module_name.startswith(f"{p}.") for p in packages)


def tables_used(packages: Iterable[str] = SCANNED_PACKAGES) -> dict[str, str]:
    """Table name -> the repository class that uses it."""
    from shared.storage.tables import TableRepository

    packages = tuple(packages)
    for _ in import_modules(packages):
        pass
    tables: dict[str, str] = {}
    for cls in _subclasses(TableRepository):
        table = getattr(cls, "table", None)
        if _in_packages(cls.__module__, packages) and isinstance(table, str) and table:
            tables[table] = f"{cls.__module__}.{cls.__qualname__}"
    return tables


def queue_constants(packages: Iterable[str] = SCANNED_PACKAGES) -> dict[str, str]:
    """Queue name -> the `*_QUEUE` constant that names it."""
    queues: dict[str, str] = {}
    for module in import_modules(tuple(packages)):
        for name, value in vars(module).items():
            if name.endswith("_QUEUE") and name.isupper() and isinstance(value, str) and value:
                queues.setdefault(value, f"{module.__name__}.{name}")
    return queues


@dataclass(frozen=True)
class QueueBinding:
    function: str
    direction: str  # "trigger" or "output"
    queue_name: str  # as written, possibly with %SETTING% parts
    connection: str  # the connection setting prefix; empty means the host storage


def _functions(app: Any) -> list[Any]:
    app.functions_bindings = None  # get_functions() refuses to index twice otherwise
    try:
        return app.get_functions()
    finally:
        app.functions_bindings = None


def binding_setting_references(app: Any) -> dict[str, str]:
    """App settings named by `%SETTING%` binding expressions (timer schedules, queue names, …) -> a function using it.
    The Functions host resolves them from app settings when it indexes the app, and fails to index without them."""
    references: dict[str, str] = {}
    for function in _functions(app):
        for binding in function.get_bindings():
            for name in _SETTING_REFERENCE.findall(json.dumps(binding.get_dict_repr(), default=str)):
                references.setdefault(name, function.get_function_name())
    return references


def queue_bindings(app: Any) -> list[QueueBinding]:
    """Queue triggers and queue output bindings of a `FunctionApp`."""
    found = []
    for function in _functions(app):
        for binding in function.get_bindings():
            kind = binding.get_binding_name()
            if kind in ("queueTrigger", "queue"):
                found.append(QueueBinding(
                    function=function.get_function_name(),
                    direction="trigger" if kind == "queueTrigger" else "output",
                    queue_name=binding.queue_name,
                    connection=getattr(binding, "connection", "") or "",
                ))
    return found


class UnresolvedSetting(KeyError):
    """A %SETTING% in a binding that the app settings do not give a literal value."""


def resolve_setting_references(value: str, settings: Mapping[str, Any]) -> str:
    """'%JOBS_QUEUE%' -> the value of the JOBS_QUEUE app setting, as the Functions host resolves binding expressions."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = settings.get(name)
        if not isinstance(resolved, str):
            raise UnresolvedSetting(f"{value!r} needs app setting {name} with a literal value in the template")
        return resolved

    return _SETTING_REFERENCE.sub(substitute, value)


def queues_used(app: Any, settings: Mapping[str, Any],
                packages: Iterable[str] = SCANNED_PACKAGES) -> dict[str, str]:
    """Queue name -> where the code uses it."""
    queues = dict(queue_constants(packages))
    for binding in queue_bindings(app):
        queues.setdefault(resolve_setting_references(binding.queue_name, settings),
                          f"{binding.direction} of function {binding.function}")
    return queues


# ---- comparisons with what the template declares ------------------------------------------------------------------

def missing_settings(read: Iterable[str], set_by_template: Mapping[str, Any], excluded: Mapping[str, str]) -> list[str]:
    return [f"setting {name} is read by the code but the template does not set it"
            for name in sorted(set(read) - set(excluded) - set(set_by_template))]


def missing_tables(used: Mapping[str, str], declared: Iterable[str], prefix: str = "") -> list[str]:
    declared = set(declared)
    return [f"table {name} (used by {where}) is not declared in the template"
            for name, where in sorted(used.items()) if f"{prefix}{name}" not in declared]


def missing_queues(used: Mapping[str, str], declared: Iterable[str]) -> list[str]:
    declared = set(declared)
    problems = []
    for name, where in sorted(used.items()):
        for queue in (name, f"{name}-poison"):
            if queue not in declared:
                problems.append(f"queue {queue} (for {name}, used by {where}) is not declared in the template")
    return problems
