"""Every setting the code reads is documented, one by one, in local.settings.example.json."""

import ast
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def settings_read_by_code() -> set[str]:
    tree = ast.parse((REPO / "shared" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get"
                and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return names


def test_every_setting_is_in_the_example_with_a_description():
    example = json.loads((REPO / "local.settings.example.json").read_text())
    read = settings_read_by_code()
    assert len(read) >= 10  # the parser found the reads
    missing_values = read - set(example["Values"])
    missing_docs = read - set(example["Descriptions"])
    assert not missing_values, f"not in Values: {sorted(missing_values)}"
    assert not missing_docs, f"not described: {sorted(missing_docs)}"
    undocumented = set(example["Values"]) - set(example["Descriptions"])
    assert not undocumented, f"values without a description: {sorted(undocumented)}"
