"""The collectors behind test_template_matches_code.py find what they claim to, on small fakes, and the comparisons
report what is missing: the checks are meaningful even while the app has no table or queue yet."""

import re
import shutil
import sys
import textwrap
import uuid

import azure.functions as func
import pytest

from tests.infra import inventory
from tests.infra.template import INFRA, app_settings, declared_queues, declared_tables, load_template


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A throwaway package with repositories and queue constants spread over modules and a subpackage."""
    name = f"fakeapp_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "repos.py").write_text(textwrap.dedent("""
        from shared.storage.tables import Row, TableRepository

        class Widgets(TableRepository):
            table = "widgets"
            row_type = Row

        class Abstract(TableRepository):
            pass
    """))
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "more.py").write_text(textwrap.dedent("""
        from fakeapp_placeholder.repos import Abstract

        class Gadgets(Abstract):
            table = "gadgets"

        PULL_QUEUE = "room-pulls"
        RETRY_QUEUE = "export-retries"
        MAX_QUEUE = 5            # not a name
        lower_queue = "ignored"  # not a constant
    """).replace("fakeapp_placeholder", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def test_table_collector_finds_repositories_in_every_module(fake_package):
    found = inventory.tables_used([fake_package])
    assert found == {
        "widgets": f"{fake_package}.repos.Widgets",
        "gadgets": f"{fake_package}.sub.more.Gadgets",
    }


def test_table_collector_ignores_repositories_outside_the_scanned_packages(fake_package):
    inventory.tables_used([fake_package])  # imports them
    assert not {"widgets", "gadgets"} & set(inventory.tables_used(["shared"]))


def test_queue_constant_collector(fake_package):
    found = inventory.queue_constants([fake_package])
    assert found == {"room-pulls": f"{fake_package}.sub.more.PULL_QUEUE",
                     "export-retries": f"{fake_package}.sub.more.RETRY_QUEUE"}


def _queue_app():
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%JOBS_QUEUE%", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="results", connection="")
    def worker(msg: func.QueueMessage, out: func.Out[str]) -> None:
        """A queue-triggered function that also writes to a queue."""

    return app


def test_queue_bindings_are_found_and_settings_resolved():
    app = _queue_app()
    used = inventory.queues_used(app, {"JOBS_QUEUE": "jobs"}, packages=[])
    assert used == {"jobs": "trigger of function worker", "results": "output of function worker"}
    assert inventory.queues_used(app, {"JOBS_QUEUE": "jobs"}, packages=[]) == used  # indexing twice works


def test_a_queue_setting_the_template_does_not_give_a_literal_fails():
    with pytest.raises(inventory.UnresolvedSetting, match="JOBS_QUEUE"):
        inventory.queues_used(_queue_app(), {"JOBS_QUEUE": {"operator": "an expression"}}, packages=[])
    with pytest.raises(inventory.UnresolvedSetting):
        inventory.queues_used(_queue_app(), {}, packages=[])


@pytest.fixture
def infra_copy(tmp_path):
    target = tmp_path / "infra"
    shutil.copytree(INFRA, target, ignore=shutil.ignore_patterns("*.md"))
    shutil.copy(INFRA.parent / "host.json", tmp_path / "host.json")
    return target


def _set_list(main, var, values):
    text = main.read_text()
    literal = "[\n" + "".join(f"  '{v}'\n" for v in values) + "]"
    pattern = re.compile(rf"^var {var} = \[.*?^\]", re.MULTILINE | re.DOTALL)
    assert pattern.search(text), f"main.bicep has no literal array {var}"
    main.write_text(pattern.sub(lambda _: f"var {var} = {literal}", text, count=1))


def test_template_reader_expands_the_table_and_queue_loops(infra_copy):
    main = infra_copy / "main.bicep"
    _set_list(main, "tableNames", ["widgets", "gadgets"])
    _set_list(main, "queueNames", ["room-pulls"])
    template = load_template(main)
    assert declared_tables(template) == {"widgets", "gadgets"}
    assert declared_queues(template) == {"room-pulls", "room-pulls-poison"}

    main.write_text(main.read_text().replace("param tablePrefix string = ''", "param tablePrefix string = 'dev'"))
    assert declared_tables(load_template(main)) == {"devwidgets", "devgadgets"}


def test_comparisons_report_a_missing_table_queue_poison_queue_and_setting(infra_copy):
    main = infra_copy / "main.bicep"
    _set_list(main, "tableNames", ["widgets"])
    _set_list(main, "queueNames", ["room-pulls"])
    storage = infra_copy / "modules" / "storage.bicep"
    text = storage.read_text()
    start = text.index("resource poisonQueues")
    storage.write_text(text[:start] + text[text.index("}]", start) + 2:])  # drop the poison-queue loop
    main.write_text(main.read_text().replace("    KEY_VAULT_URL: keyVault.outputs.uri\n", ""))
    template = load_template(main)

    assert inventory.missing_tables({"widgets": "repo", "gadgets": "repo2"}, declared_tables(template)) == [
        "table gadgets (used by repo2) is not declared in the template"]
    assert inventory.missing_queues({"room-pulls": "timer"}, declared_queues(template)) == [
        "queue room-pulls-poison (for room-pulls, used by timer) is not declared in the template"]
    assert inventory.missing_settings({"KEY_VAULT_URL", "WEBSITE_HOSTNAME"}, app_settings(template),
                                      {"WEBSITE_HOSTNAME": "platform"}) == [
        "setting KEY_VAULT_URL is read by the code but the template does not set it"]
