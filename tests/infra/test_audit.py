"""scripts/audit audits the lock files as they are: every locked package, at its locked version, nothing resolved.

The vulnerability services are not reachable from the build machines, so these runs use pip-audit's `--dry-run`,
which reads and collects every dependency exactly as a real audit does, then stops before asking a service.
"""

import re
import shutil
import subprocess
from pathlib import Path

from tests.lockfiles import lock

REPO = Path(__file__).resolve().parents[2]


def dry_run(root: Path) -> list[int]:
    """Run root/scripts/audit --dry-run; the package counts it reports, one per lock file."""
    result = subprocess.run(["bash", str(root / "scripts" / "audit"), "--dry-run"], capture_output=True, text=True,
                            timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return [int(n) for n in re.findall(r"would have audited (\d+) packages", result.stdout + result.stderr)]


def test_the_audit_covers_every_package_of_both_locks():
    counts = dry_run(REPO)
    assert counts == [len(lock(REPO / "requirements.txt")), len(lock(REPO / "requirements-dev.txt"))]


def test_the_audit_reads_the_lock_without_resolving_it(tmp_path: Path):
    """A pinned name that exists nowhere would fail any resolution or install: the audit must take the lock's
    lines as the set to audit, not what pip would choose today."""
    dry_run(REPO)  # installs the audit's own venv once
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "audit", tmp_path / "scripts" / "audit")
    (tmp_path / ".venv-audit").symlink_to(REPO / ".venv-audit")
    fake = "no-such-package-anywhere==0.0.1 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    (tmp_path / "requirements.txt").write_text(fake)
    (tmp_path / "requirements-dev.txt").write_text(fake + "another-missing-package==1.0 --hash=sha256:" + "1" * 64)
    assert dry_run(tmp_path) == [1, 2]
