"""Azure Functions (ASP.NET Core) route templates translated to werkzeug rules.

ASP.NET tries literals before constrained parameters, constrained before plain ones, and catch-alls last.
Werkzeug already ranks static parts above converters; giving the constraint converters a lower weight than the
default one ranks them above plain parameters, and the host keeps catch-all routes in a second map it consults
only when the first finds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from werkzeug.routing import BaseConverter

_TOKEN = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Constrained(BaseConverter):
    """Matches like ASP.NET's inline constraint but hands the function the original text, as the host does."""

    weight = 50


class IntConverter(_Constrained):
    regex = r"-?\d+"


class AlphaConverter(_Constrained):
    regex = r"[A-Za-z]+"


class GuidConverter(_Constrained):
    regex = r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?"


class BoolConverter(_Constrained):
    regex = r"(?i:true|false)"


class NumberConverter(_Constrained):
    regex = r"-?\d+(?:\.\d+)?"


# Constraint name -> werkzeug converter name. Constraints not listed (length(), min(), regex(), datetime, ...) match
# like a plain parameter: the local host is for development, and the function validates its input anyway.
CONSTRAINTS = {"int": "az_int", "long": "az_int", "alpha": "az_alpha", "guid": "az_guid", "bool": "az_bool",
               "double": "az_number", "decimal": "az_number", "float": "az_number"}
CONVERTERS: dict[str, type[BaseConverter]] = {
    "az_int": IntConverter, "az_alpha": AlphaConverter, "az_guid": GuidConverter, "az_bool": BoolConverter,
    "az_number": NumberConverter,
}


@dataclass(frozen=True)
class Route:
    """One werkzeug rule string for a template; optional parameters give a template several."""

    rule: str
    defaults: dict[str, str] = field(default_factory=dict)  # values of `{p=default}` left out of this variant


@dataclass(frozen=True)
class _Param:
    name: str
    constraints: tuple[str, ...]
    optional: bool
    default: str | None
    catch_all: bool

    @property
    def rule(self) -> str:
        if self.catch_all:
            return f"<path:{self.name}>"
        converter = next((CONSTRAINTS[c] for c in self.constraints if c in CONSTRAINTS), None)
        return f"<{converter}:{self.name}>" if converter else f"<{self.name}>"


def is_catch_all(template: str) -> bool:
    return any(token.lstrip().startswith("*") for token in _TOKEN.findall(template))


def translate(template: str, prefix: str) -> list[Route]:
    """Rules for `template` under the route prefix, from the shortest variant (optional tail left out) up."""
    segments = [s for s in template.strip().strip("/").split("/") if s]
    required: list[str] = []
    tail: list[_Param] = []
    for index, segment in enumerate(segments):
        tokens = _TOKEN.findall(segment)
        params = [_parse(token, template) for token in tokens]
        whole = len(tokens) == 1 and _TOKEN.fullmatch(segment) is not None
        if whole and (params[0].optional or params[0].default is not None or params[0].catch_all):
            if params[0].catch_all and index != len(segments) - 1:
                raise ValueError(f"route '{template}': a catch-all parameter must be the last segment")
            tail.append(params[0])
            continue
        if tail:
            raise ValueError(f"route '{template}': only trailing segments may be optional")
        if any(p.optional or p.default is not None or p.catch_all for p in params):
            raise ValueError(f"route '{template}': optional parameters must fill a whole segment")
        required.append(_TOKEN.sub(lambda m: _parse(m.group(1), template).rule, segment))
    base = [prefix.strip("/")] if prefix.strip("/") else []
    routes = []
    for cut in range(len(tail) + 1):
        parts = base + required + [p.rule for p in tail[:cut]]
        defaults = {p.name: p.default for p in tail[cut:] if p.default is not None}
        routes.append(Route("/" + "/".join(parts), defaults))
    return routes


def _parse(token: str, template: str) -> _Param:
    text = token.strip()
    catch_all = text.startswith("*")
    text = text.lstrip("*")
    optional = text.endswith("?")
    text = text.rstrip("?")
    default = None
    if "=" in text:
        text, default = text.split("=", 1)
    name, *constraints = _split_constraints(text)
    if not _NAME.fullmatch(name):
        raise ValueError(f"route '{template}': unsupported parameter name '{name}'")
    names = tuple(c.split("(", 1)[0].strip().lower() for c in constraints)
    return _Param(name, names, optional or catch_all, default, catch_all)


def _split_constraints(text: str) -> list[str]:
    """Split `name:c1:c2(args)` on colons outside parentheses (`regex(a:b)` keeps its colon)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]
