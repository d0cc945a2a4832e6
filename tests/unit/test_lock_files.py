"""The lock files: every dependency pinned with hashes, in step with the human-edited pins, and covering what runs.

Azure's remote build runs `pip install -r requirements.txt`; a single `--hash` puts pip in hash-checking mode for
every line, so a lock with one unhashed or unpinned line would fail the deployment, and a lock missing a
dependency would leave pip free to fetch any version of it unchecked.
"""

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.lockfiles import lock, top_level_pins

REPO = Path(__file__).resolve().parents[2]


def test_every_line_of_both_locks_is_an_exact_pin_with_hashes():
    runtime = lock(REPO / "requirements.txt")
    dev = lock(REPO / "requirements-dev.txt")
    assert len(runtime) >= 20  # the transitive dependencies are there, not just the top-level pins
    assert len(dev) > len(runtime)


def test_the_parser_refuses_an_unhashed_or_unpinned_line(tmp_path: Path):
    for bad in ("requests==2.34.2\n", "requests>=2 \\\n    --hash=sha256:" + "0" * 64 + "\n",
                "requests==2.34.2 --hash=md5:0123\n"):
        (tmp_path / "requirements.txt").write_text(bad)
        try:
            lock(tmp_path / "requirements.txt")
        except AssertionError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_the_locks_pin_exactly_what_the_in_files_ask():
    """A pin edited in a .in file without running scripts/lock would otherwise ship the old version."""
    runtime = lock(REPO / "requirements.txt")
    dev = lock(REPO / "requirements-dev.txt")
    for name, version in top_level_pins(REPO / "requirements.in").items():
        assert runtime.get(name, ("missing",))[0] == version, f"requirements.txt: {name} is not {version}"
    for name, version in top_level_pins(REPO / "requirements-dev.in").items():
        assert dev.get(name, ("missing",))[0] == version, f"requirements-dev.txt: {name} is not {version}"


def test_the_dev_lock_installs_the_runtime_lock_unchanged():
    """Tests must run on the versions Azure installs: same version and the same files for every runtime pin."""
    runtime = lock(REPO / "requirements.txt")
    dev = lock(REPO / "requirements-dev.txt")
    different = {name: (pin, dev.get(name)) for name, pin in runtime.items() if dev.get(name) != pin}
    assert not different, different
    dev_in = (REPO / "requirements-dev.in").read_text()
    assert "-r requirements.in" in dev_in and "-c requirements.txt" in dev_in


def test_cryptography_is_past_the_pkcs7_advisory():
    """GHSA-g6cj-pr64-35w5 (CVE-2026-69247): PKCS#7 decryption as a Bleichenbacher oracle in 44.0.0 to 49.x."""
    version = lock(REPO / "requirements.txt")["cryptography"][0]
    assert tuple(int(part) for part in version.split(".")[:2]) >= (50, 0)


def runtime_closure(roots: set[str]) -> set[str]:
    """Every distribution the installed runtime pins need here, following installed metadata and markers."""
    seen: set[str] = set()
    pending = [(name, frozenset[str]()) for name in roots]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        first = key not in seen
        seen.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            environments = [dict(default_environment(), extra=extra) for extra in extras | {""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            if first or requirement.extras:
                pending.append((requirement.name, frozenset(requirement.extras)))
    return seen


def test_everything_the_runtime_pins_need_is_in_the_runtime_lock():
    """Follows the installed distributions' own requirements, so a dependency the lock forgot is caught."""
    runtime = lock(REPO / "requirements.txt")
    needed = runtime_closure(set(top_level_pins(REPO / "requirements.in")))
    assert "cffi" in needed  # the walk reached a transitive dependency (cryptography's)
    missing = needed - set(runtime)
    assert not missing, f"installed and needed at run time, but not in requirements.txt: {sorted(missing)}"


def imported_modules() -> set[str]:
    """Modules imported by the code Azure runs (function_app.py, functions/, shared/), less the standard library
    and the project's own packages."""
    files = [REPO / "function_app.py", *(REPO / "functions").rglob("*.py"), *(REPO / "shared").rglob("*.py")]
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
    local = set(sys.stdlib_module_names) | {"functions", "shared", "function_app", "__future__"}
    return {module for module in modules if module.split(".")[0] not in local}


def owning_distribution(module: str, files: dict[str, str]) -> str | None:
    """The installed distribution whose files hold the module (its deepest package or module file), so a
    namespace package such as `azure` is attributed to `azure-data-tables` rather than to any azure-* package."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        stem = "/".join(parts[:depth])
        for candidate in (f"{stem}/__init__.py", f"{stem}.py", f"{stem}.so"):
            if candidate in files:
                return files[candidate]
    return None


def installed_files() -> dict[str, str]:
    """Path of every installed file -> its distribution; extension modules also under `<module>.so`, without
    their ABI tag."""
    files = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            path = str(file)
            files[path] = name
            if path.endswith(".so"):
                files[path.split(".", 1)[0] + ".so"] = name
    return files


def test_every_package_the_app_imports_is_in_the_runtime_lock():
    """A dev-only package imported by app code works in tests and fails in Azure: catch it here."""
    runtime = lock(REPO / "requirements.txt")
    files = installed_files()
    imported = imported_modules()
    assert {"azure.data.tables", "msal", "requests"} <= imported
    owners = {module: owning_distribution(module, files) for module in imported}
    assert owners["azure.data.tables"] == "azure-data-tables"
    unowned = sorted(module for module, owner in owners.items() if owner is None)
    assert not unowned, f"imported by the app but installed by no distribution: {unowned}"
    unlocked = sorted(f"{module} ({owner})" for module, owner in owners.items() if owner not in runtime)
    assert not unlocked, f"imported by the app but not pinned in requirements.txt: {unlocked}"
