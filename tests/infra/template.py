"""Reading the Bicep in infra/: parse it (pycep, the parser checkov bundles), run checkov, and read back what the
template declares (app settings, tables, queues) so tests can hold it against the code.

No Bicep compiler can be installed where CI runs, so this is the check that a template is well formed: pycep raises
on a syntax error (checkov alone would report 0 failures for a file it cannot parse, so its parse errors are counted
as problems here too).

pycep reports a bare identifier and a string literal the same way (`name: queue` and `name: 'queue'` both give
"queue"), so a value that names a parameter, variable or loop item is read as a reference to it.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"

TABLE_TYPE = "Microsoft.Storage/storageAccounts/tableServices/tables"
QUEUE_TYPE = "Microsoft.Storage/storageAccounts/queueServices/queues"
SITE_TYPE = "Microsoft.Web/sites"
SITE_CONFIG_TYPE = "Microsoft.Web/sites/config"

_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_SKIP_COMMENT = re.compile(r"//\s*checkov:skip=([A-Za-z0-9_]+)(?::(.*))?")


class BicepSyntaxError(ValueError):
    """A .bicep file that does not parse."""


class UnresolvedName(ValueError):
    """A table or queue name the tests cannot work out from literals (parameters, variables, loop items)."""


def bicep_files(root: Path = INFRA) -> list[Path]:
    return sorted(root.rglob("*.bicep"))


def parse_bicep(source: Path | str) -> dict[str, Any]:
    """Parse a .bicep file (a Path) or Bicep text (a str); `BicepSyntaxError` if it is not valid Bicep syntax."""
    text = source.read_text() if isinstance(source, Path) else source
    where = str(source) if isinstance(source, Path) else "<text>"
    try:
        return copy.deepcopy(_parse_text(text))
    except BicepSyntaxError as exc:
        raise BicepSyntaxError(f"{where}: {exc}") from exc.__cause__


@functools.lru_cache(maxsize=64)
def _parse_text(text: str) -> dict[str, Any]:
    try:
        from pycep import BicepParser
    except ImportError:
        raise RuntimeError("pycep is missing: it comes with checkov, a dev dependency (requirements-dev.txt)") from None

    try:
        parsed = BicepParser().parse(text=text)
    except Exception as exc:  # lark raises several unrelated exception types
        raise BicepSyntaxError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise BicepSyntaxError("the parser returned no template")
    return parsed


# ---- checkov ------------------------------------------------------------------------------------------------------

def checkov_executable() -> str:
    """checkov from the running interpreter's environment, else from PATH."""
    beside = Path(sys.executable).parent / "checkov"
    if beside.exists():
        return str(beside)
    found = shutil.which("checkov")
    if not found:
        raise RuntimeError("checkov is not installed: it is a dev dependency (requirements-dev.txt)")
    return found


def run_checkov(directory: Path) -> dict[str, Any]:
    """checkov's JSON report for every .bicep file under `directory` (offline: --skip-download)."""
    command = [checkov_executable(), "--framework", "bicep", "--skip-download", "--directory", str(directory),
               "--output", "json"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode not in (0, 1):  # 1 = some check failed; anything else is checkov itself failing
        raise RuntimeError(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # several frameworks: one report each
        report = next(r for r in report if r.get("check_type") == "bicep")
    report.setdefault("results", {})
    return report


def checkov_problems(report: Mapping[str, Any]) -> list[str]:
    """Everything that must fail CI: failed checks, and files checkov could not parse (it exits 0 on those)."""
    problems = [f"checkov could not parse {path}" for path in report["results"].get("parsing_errors", [])]
    if report.get("summary", {}).get("parsing_errors") and not problems:
        problems.append(f"checkov could not parse {report['summary']['parsing_errors']} file(s)")
    for failed in report["results"].get("failed_checks", []):
        lines = failed.get("file_line_range", ["?", "?"])
        problems.append(f"{failed['check_id']} ({failed['check_name']}) failed for {failed['resource']} in "
                        f"{failed['file_path']}:{lines[0]}-{lines[1]}")
    return problems


@dataclass(frozen=True)
class InlineSkip:
    path: Path
    line: int
    check_id: str
    reason: str


def inline_skips(root: Path = INFRA) -> list[InlineSkip]:
    skips = []
    for path in bicep_files(root):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = _SKIP_COMMENT.search(line)
            if match:
                skips.append(InlineSkip(path, number, match.group(1), (match.group(2) or "").strip()))
    return skips


# ---- what the template declares -----------------------------------------------------------------------------------

@dataclass
class BicepFile:
    path: Path
    parsed: dict[str, Any]
    # Literal values of parameters (their defaults, or what the caller passes) and variables, by name.
    env: dict[str, Any] = field(default_factory=dict)

    def resources(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self.parsed.get("resources", {}).items()


@dataclass
class Template:
    main: BicepFile
    modules: dict[str, BicepFile]  # by the symbolic name main.bicep gives the module

    def files(self) -> list[BicepFile]:
        return [self.main, *self.modules.values()]


def _is_literal(value: Any) -> bool:
    if isinstance(value, str | int | bool):
        return True
    if isinstance(value, list):
        return all(_is_literal(v) for v in value)
    return False


def _deref(value: Any, env: Mapping[str, Any]) -> Any:
    """A string that names something in `env` is a reference to it."""
    if isinstance(value, str) and value in env:
        return env[value]
    return value


def _own_env(parsed: Mapping[str, Any], passed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for name, param in parsed.get("parameters", {}).items():
        if passed is not None and name in passed:
            env[name] = passed[name]
        elif _is_literal(param.get("default")):
            env[name] = param["default"]
    for name, var in parsed.get("variables", {}).items():
        value = _deref(var.get("value"), env)
        if _is_literal(value):
            env[name] = value
    return env


def load_template(main: Path = MAIN) -> Template:
    parsed = parse_bicep(main)
    root = BicepFile(main, parsed, _own_env(parsed))
    modules = {}
    for symbol, module in parsed.get("modules", {}).items():
        path = (main.parent / module["detail"]["path"]).resolve()
        module_parsed = parse_bicep(path)
        passed = {}
        for name, value in module["config"].get("params", {}).items():
            value = _deref(value, root.env)
            if _is_literal(value):
                passed[name] = value
        modules[symbol] = BicepFile(path, module_parsed, _own_env(module_parsed, passed))
    return Template(root, modules)


def app_settings(template: Template) -> dict[str, Any]:
    """Every app setting the template gives the Function App (sites/config 'appsettings' and siteConfig.appSettings),
    by name; values are literals where the template makes them literal, else pycep's expression."""
    settings: dict[str, Any] = {}
    for bicep in template.files():
        for _, resource in bicep.resources():
            config = resource.get("config", {})
            if resource["type"] == SITE_CONFIG_TYPE and config.get("name") == "appsettings":
                for name, value in config.get("properties", {}).items():
                    settings[name.strip("'")] = _deref(value, bicep.env)
            if resource["type"] == SITE_TYPE:
                site_config = config.get("properties", {}).get("siteConfig", {})
                for entry in site_config.get("appSettings", []) if isinstance(site_config, dict) else []:
                    settings[str(entry["name"]).strip("'")] = _deref(entry.get("value"), bicep.env)
    return settings


def _expand(name: Any, env: Mapping[str, Any], what: str) -> str:
    name = _deref(name, env)
    if not isinstance(name, str):
        raise UnresolvedName(f"{what}: the name is not a string the tests can read: {name!r}")

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if not isinstance(value, str):
            raise UnresolvedName(f"{what}: cannot resolve ${{{match.group(1)}}} in {name!r} from literals")
        return value

    return _INTERPOLATION.sub(substitute, name)


def declared_names(template: Template, resource_type: str) -> set[str]:
    """Names of every resource of `resource_type`, loops expanded over their (literal) arrays."""
    names: set[str] = set()
    for bicep in template.files():
        for symbol, resource in bicep.resources():
            if resource["type"] != resource_type or resource.get("existing"):
                continue
            config = resource["config"]
            what = f"{bicep.path.name}: {symbol}"
            if "loop_type" in config:
                loop = config["loop_type"]
                if loop.get("type") != "array":
                    raise UnresolvedName(f"{what}: only `for x in array` loops are understood")
                items = bicep.env.get(loop["detail"]["array_name"])
                if not isinstance(items, list):
                    raise UnresolvedName(f"{what}: {loop['detail']['array_name']} is not a literal array")
                for item in items:
                    env = {**bicep.env, loop["detail"]["item_name"]: item}
                    names.add(_expand(config["config"]["name"], env, what))
            else:
                names.add(_expand(config["name"], bicep.env, what))
    return names


def declared_tables(template: Template) -> set[str]:
    """Table names as created, with TABLE_PREFIX at its default."""
    return declared_names(template, TABLE_TYPE)


def declared_queues(template: Template) -> set[str]:
    return declared_names(template, QUEUE_TYPE)
