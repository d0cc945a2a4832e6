// Key Vault for client secrets, the token-cache data key and webhook signing secrets. Authorization is Azure RBAC
// (no access policies); deleted secrets stay recoverable (soft delete) and cannot be purged early (purge protection).

@description('Azure region for the vault.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Days a deleted secret (or the vault) stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    //checkov:skip=CKV_AZURE_109:The Function App on Flex Consumption without a virtual network has no fixed outbound address to allow; every request still needs an Entra token and an RBAC role on this vault.
    //checkov:skip=CKV_AZURE_189:Same reason: public network access stays on so the app can reach the vault; access is RBAC only.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

@description('Vault URI, e.g. https://<name>.vault.azure.net/ (the app setting KEY_VAULT_URL).')
output uri string = vault.properties.vaultUri

@description('Vault name.')
output name string = vault.name
