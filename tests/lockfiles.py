"""Reading the lock files (requirements*.txt) and the pins they are compiled from (requirements*.in)."""

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?P<hashes>(?:\s+--hash=\S+)*)$")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}$")


def logical_lines(path: Path) -> list[str]:
    """Requirement lines as pip reads them: comments dropped, backslash continuations joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def lock(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes); fails on any line that is not an exact pin with sha256 hashes."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    for line in logical_lines(path):
        match = PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line[:80]!r}"
        hashes = match["hashes"].split()
        assert hashes, f"{path.name}: {match['name']} has no --hash"
        assert all(HASH.match(h) for h in hashes), f"{path.name}: {match['name']} has a hash that is not sha256"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = (match["version"], frozenset(hashes))
    return pins


def top_level_pins(path: Path) -> dict[str, str]:
    """The `name==version` lines of a .in file (its -r/-c options left out)."""
    pins = {}
    for line in logical_lines(path):
        if line.startswith("-"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {line!r} is not pinned with =="
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins
