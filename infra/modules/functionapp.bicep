// The Function App on the Flex Consumption plan (Linux): Python, system-assigned managed identity, HTTPS only,
// TLS 1.2, no FTP and no basic-auth publishing; the deployment package lives in a blob container reached with the
// app's identity. App settings are applied by main.bicep once the identity's roles and the vault exist.

@description('Azure region for the plan and the app.')
param location string

@description('Tags applied to the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('Function App name (part of its default host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('azd service name in azure.yaml; azd finds the app by this tag.')
param azdServiceName string = 'api'

@description('URL of the blob container that holds the deployment package.')
param deploymentContainerUrl string

@description('Python version of the Functions runtime.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Memory per instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Spread instances across availability zones (only in regions that offer it for Flex Consumption).')
param zoneRedundant bool = false

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    //checkov:skip=CKV_AZURE_225:Zone redundancy is a parameter (zoneRedundant, off by default): Flex Consumption offers it only in some regions.
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': azdServiceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    //checkov:skip=CKV_AZURE_222:Public by design: browsers reach the anonymous OAuth start and callback routes and host apps call the API over the internet; every other route needs a function key.
    //checkov:skip=CKV_AZURE_17:Client certificates cannot work here: browsers hit the OAuth callback and an optional certificate request would prompt users for one; host apps authenticate with function keys.
    //checkov:skip=CKV_AZURE_212:Flex Consumption scales instances on demand (to zero when idle); a fixed instance minimum would only add cost, and timers and queues recover on any instance.
    //checkov:skip=CKV_AZURE_213:Not configured: Flex Consumption adds and removes instances on demand; the anonymous GET /api/health serves external probes and availability tests.
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Function App name.')
output name string = site.name

@description('Default host name, e.g. <name>-<hash>.<region>-01.azurewebsites.net.')
output defaultHostName string = site.properties.defaultHostName

@description('Object (principal) ID of the system-assigned managed identity.')
output principalId string = site.identity.principalId
