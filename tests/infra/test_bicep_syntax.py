"""Every .bicep file under infra/ is valid Bicep syntax (pycep, the parser checkov uses; no Bicep compiler here)."""

import pytest

from tests.infra.template import INFRA, MAIN, BicepSyntaxError, bicep_files, parse_bicep


def test_the_template_and_its_modules_are_all_there():
    names = {p.relative_to(INFRA).as_posix() for p in bicep_files()}
    assert "main.bicep" in names
    assert len(names) >= 2


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path):
    parsed = parse_bicep(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_every_module_main_uses_exists_and_parses():
    modules = parse_bicep(MAIN)["modules"]
    assert modules
    for module in modules.values():
        parse_bicep(MAIN.parent / module["detail"]["path"])


def test_a_syntax_error_is_caught(tmp_path):
    """The check bites: a copy of main.bicep with one brace missing does not parse."""
    lines = MAIN.read_text().splitlines(keepends=True)
    last_close = max(i for i, line in enumerate(lines) if line.strip() == "}")
    broken = "".join(lines[:last_close] + lines[last_close + 1:])
    path = tmp_path / "main.bicep"
    path.write_text(broken)
    with pytest.raises(BicepSyntaxError, match=r"main\.bicep"):
        parse_bicep(path)


@pytest.mark.parametrize("snippet", [
    "param location string = resourceGroup().location\nresource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n",
    "var names = [\n  'a'\n",
    "resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'abc\n}\n",
])
def test_unbalanced_or_unterminated_bicep_is_rejected(snippet):
    with pytest.raises(BicepSyntaxError):
        parse_bicep(snippet)
