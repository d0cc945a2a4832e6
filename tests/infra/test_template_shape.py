"""What the brief requires of the deployment, read from the template: the security properties (some of which checkov
has no check for, e.g. shared keys off), least-privilege roles, the outputs, and the azd wiring."""

import json
import re

import pytest

from tests.infra.template import INFRA, MAIN, REPO, load_template, parse_bicep

ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}


@pytest.fixture(scope="module")
def template():
    return load_template()


def _resource(template, module, resource_type):
    matches = [r["config"] for r in template.modules[module].parsed["resources"].values()
               if r["type"] == resource_type and not r.get("existing")]
    assert len(matches) == 1, f"expected one {resource_type} in {module}"
    return matches[0]


def test_storage_account_takes_no_keys_and_no_plain_http(template):
    props = _resource(template, "storage", "Microsoft.Storage/storageAccounts")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["allowBlobPublicAccess"] is False
    container = _resource(template, "storage", "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["properties"]["publicAccess"] == "None"


def test_key_vault_uses_rbac_soft_delete_and_purge_protection(template):
    props = _resource(template, "keyVault", "Microsoft.KeyVault/vaults")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert "accessPolicies" not in props


def test_function_app_is_flex_consumption_python_with_its_own_identity(template):
    plan = _resource(template, "functionApp", "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True

    site = _resource(template, "functionApp", "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "SystemAssigned"}
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    config = props["functionAppConfig"]
    assert config["runtime"]["name"] == "python"
    params = template.modules["functionApp"].parsed["parameters"]
    assert params["pythonVersion"]["default"] == "3.11"
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "SystemAssignedIdentity"}
    assert "azd-service-name" in json.dumps(site["tags"])


def test_basic_auth_publishing_is_off_for_ftp_and_scm(template):
    policies = {r["config"]["name"]: r["config"]["properties"]["allow"]
                for r in template.modules["functionApp"].parsed["resources"].values()
                if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"}
    assert policies == {"ftp": False, "scm": False}


def test_application_insights_accepts_only_entra_authenticated_telemetry(template):
    props = _resource(template, "monitoring", "Microsoft.Insights/components")["properties"]
    assert props["DisableLocalAuth"] is True
    assert "logAnalytics" in json.dumps(props["WorkspaceResourceId"])


def test_roles_are_the_built_in_least_privilege_ones_scoped_to_each_resource(template):
    roles_module = template.modules["roles"].parsed
    role_ids = roles_module["variables"]["roles"]["value"]
    assert set(role_ids.values()) == set(ROLES), "role GUIDs differ from the verified built-in roles"
    scopes = {}
    for symbol, resource in roles_module["resources"].items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = resource["config"]
        key = next(k for k in role_ids if f'"{k}"' in json.dumps(config["properties"]["roleDefinitionId"]))
        scopes[ROLES[role_ids[key]]] = config["scope"]
        assert config["properties"]["principalType"] == "ServicePrincipal", symbol
        assert f'"{key}"' in json.dumps(config["name"]), f"{symbol}: name must be guid(scope, principal, role)"
    assert scopes == {
        "Storage Blob Data Owner": "storage",
        "Storage Queue Data Contributor": "storage",
        "Storage Table Data Contributor": "storage",
        "Key Vault Secrets Officer": "vault",
        "Monitoring Metrics Publisher": "applicationInsights",
    }
    for symbol in ("storage", "vault", "applicationInsights"):
        assert roles_module["resources"][symbol]["existing"] is True


def test_outputs_give_what_a_person_needs_next(template):
    outputs = template.main.parsed["outputs"]
    for name in ("FUNCTION_APP_NAME", "FUNCTION_APP_URL", "OAUTH_REDIRECT_URI", "KEY_VAULT_URI",
                 "FUNCTION_APP_PRINCIPAL_ID"):
        assert name in outputs, name
    assert outputs["OAUTH_REDIRECT_URI"]["value"].endswith("/${routePrefix}/oauth/callback")


def test_route_prefix_comes_from_host_json(template):
    text = json.dumps(template.main.parsed["variables"]["routePrefix"])
    assert '"../host.json"' in text and '"routePrefix"' in text
    host = json.loads((REPO / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"]


def test_azd_parameters_name_real_parameters():
    params = parse_bicep(MAIN)["parameters"]
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(values) <= set(params)
    assert values["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert values["location"]["value"] == "${AZURE_LOCATION}"
    for name, param in params.items():
        assert any(d["type"] == "description" for d in param.get("decorators", [])), f"{name} has no description"


def test_azure_yaml_deploys_the_repository_root_as_a_python_function_app():
    text = (REPO / "azure.yaml").read_text()
    assert re.search(r"^infra:\n(?:  .*\n)*?  path: infra$", text, re.MULTILINE)
    service = re.search(r"^services:\n  api:\n((?:    .*\n)+)", text, re.MULTILINE)
    assert service, "azure.yaml has no service api"
    fields = dict(line.strip().split(": ", 1) for line in service.group(1).splitlines())
    assert fields == {"project": ".", "language": "python", "host": "function"}


def test_every_parameter_is_documented_in_the_infra_readme():
    """infra/README.md's table lists every parameter of main.bicep, so the page stays in step with the template."""
    params = re.findall(r"^param (\w+) ", MAIN.read_text(), flags=re.MULTILINE)
    documented = set(re.findall(r"`(\w+)`", (INFRA / "README.md").read_text().split("## Parameters", 1)[1]))
    assert params and [p for p in params if p not in documented] == []
