"""checkov finds no failed check in infra/, and every deliberate exception is an inline skip with a reason."""

import re
import shutil

import pytest

from tests.infra.template import INFRA, checkov_problems, inline_skips, run_checkov


@pytest.fixture(scope="module")
def report():
    return run_checkov(INFRA)


def test_checkov_reports_no_failed_check(report):
    assert checkov_problems(report) == []
    summary = report["summary"]
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    # It really looked: the storage account, vault, site, plan, components, role assignments…
    assert summary["resource_count"] >= 15
    assert summary["passed"] >= 20


def test_every_inline_skip_has_a_reason_and_is_used(report):
    skips = inline_skips()
    assert skips, "expected the documented exceptions (public endpoints without a virtual network)"
    skipped = {(r["file_abs_path"], r["check_id"]) for r in report["results"].get("skipped_checks", [])}
    for skip in skips:
        where = f"{skip.path.relative_to(INFRA)}:{skip.line}"
        assert re.fullmatch(r"CKV2?_AZURE_\d+", skip.check_id), f"{where}: unknown check id {skip.check_id}"
        assert len(skip.reason) >= 20, f"{where}: {skip.check_id} is skipped without a real reason"
        assert (str(skip.path), skip.check_id) in skipped, (
            f"{where}: {skip.check_id} is skipped but checkov no longer runs it there; remove the stale skip")


def test_checkov_skips_only_what_the_bicep_skips_inline(report):
    for result in report["results"].get("skipped_checks", []):
        comment = result["check_result"].get("suppress_comment", "")
        assert comment and comment != "No comment provided", f"{result['check_id']} skipped without a reason"


def _copy_infra(tmp_path):
    target = tmp_path / "infra"
    shutil.copytree(INFRA, target, ignore=shutil.ignore_patterns("*.md"))
    # main.bicep reads ../host.json for the route prefix
    shutil.copy(INFRA.parent / "host.json", tmp_path / "host.json")
    return target


def test_an_insecure_storage_account_fails(tmp_path):
    """The check bites: a storage account that accepts plain HTTP and TLS 1.0 makes checkov report failures."""
    infra = _copy_infra(tmp_path)
    storage = infra / "modules" / "storage.bicep"
    text = storage.read_text()
    assert "supportsHttpsTrafficOnly: true" in text and "minimumTlsVersion: 'TLS1_2'" in text
    storage.write_text(text.replace("supportsHttpsTrafficOnly: true", "supportsHttpsTrafficOnly: false")
                       .replace("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"))
    report = run_checkov(infra)
    failed = {f["check_id"] for f in report["results"]["failed_checks"]}
    assert {"CKV_AZURE_3", "CKV_AZURE_44"} <= failed
    assert any("CKV_AZURE_3" in problem for problem in checkov_problems(report))


def test_a_vault_without_purge_protection_fails(tmp_path):
    infra = _copy_infra(tmp_path)
    vault = infra / "modules" / "keyvault.bicep"
    vault.write_text(vault.read_text().replace("enablePurgeProtection: true", "enablePurgeProtection: false"))
    failed = {f["check_id"] for f in run_checkov(infra)["results"]["failed_checks"]}
    assert "CKV_AZURE_110" in failed


def test_a_file_checkov_cannot_parse_is_a_problem(tmp_path):
    """checkov exits 0 on a file it cannot parse; the helper the CI test uses counts it as a problem."""
    infra = _copy_infra(tmp_path)
    storage = infra / "modules" / "storage.bicep"
    lines = storage.read_text().splitlines(keepends=True)
    last_close = max(i for i, line in enumerate(lines) if line.strip() == "}")
    storage.write_text("".join(lines[:last_close] + lines[last_close + 1:]))
    problems = checkov_problems(run_checkov(infra))
    assert any("could not parse" in p for p in problems), problems
