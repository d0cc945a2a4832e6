// Outlook calendar sync: the whole Azure deployment, into one resource group.
//
//   az deployment group create --resource-group <rg> --template-file infra/main.bicep
//   azd up                     (azure.yaml at the repository root; resource-group scoped)
//
// The Function App (Flex Consumption, Linux, Python) reaches its storage account, Key Vault and Application
// Insights with its system-assigned managed identity: no key, password or connection secret is in any setting.
// What the code needs (its settings, tables and queues) is declared here; tests/infra checks it against the code.

targetScope = 'resourceGroup'

@description('Short name of this deployment (azd passes its environment name); it seeds the resource names and the azd-env-name tag.')
@minLength(1)
@maxLength(64)
param environmentName string = 'outlook-sync'

@description('Azure region for every resource; it must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Where browsers reach the app, without a trailing slash. Empty: https://<the app\'s default host name>. Set it when a custom domain fronts the app; the OAuth redirect URI is this plus /<route prefix>/oauth/callback.')
param publicBaseUrl string = ''

@description('Microsoft identity platform host (IDENTITY_AUTHORITY_HOST): https://login.microsoftonline.com, or a national cloud\'s.')
param identityAuthorityHost string = 'https://login.microsoftonline.com'

@description('Microsoft Graph base URL with its version (GRAPH_BASE_URL): https://graph.microsoft.com/v1.0, or a national cloud\'s.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Optional prefix (letters and digits, starting with a letter) for every table name (TABLE_PREFIX).')
param tablePrefix string = ''

@description('Name of the Key Vault secret that holds the token-cache data key (DATA_KEY_SECRET_NAME); created on first use.')
param dataKeySecretName string = 'token-cache-data-key'

@description('Seconds a started authorization may take before its single-use state expires (OAUTH_FLOW_TTL_SECONDS).')
@minValue(60)
@maxValue(3600)
param oauthFlowTtlSeconds int = 600

@description('Refresh a connection\'s tokens after this many idle days (TOKEN_REFRESH_IDLE_DAYS), well before Microsoft\'s 90-day inactivity expiry.')
@minValue(1)
@maxValue(80)
param tokenRefreshIdleDays int = 30

@description('NCRONTAB schedule (six fields, UTC) of the token-health sweep (TOKEN_SWEEP_SCHEDULE).')
param tokenSweepSchedule string = '0 0 3 * * *'

@description('Days before a recorded client-secret expiry to raise a warning alert, comma-separated (SECRET_EXPIRY_WARN_DAYS).')
param secretExpiryWarnDays string = '30,7'

@description('Days resolved alerts stay listed on the dashboard (ALERT_RESOLVED_RETENTION_DAYS).')
@minValue(1)
param alertResolvedRetentionDays int = 14

@description('Graph batch requests in flight at once per instance, across mailboxes (GRAPH_GLOBAL_CONCURRENCY); each mailbox has at most one.')
@minValue(1)
@maxValue(256)
param graphGlobalConcurrency int = 16

@description('NCRONTAB schedule (six fields, UTC) of the export retry drain (EXPORT_RETRY_SCHEDULE).')
param exportRetrySchedule string = '0 */5 * * * *'

@description('NCRONTAB schedule (six fields, UTC) of the room-calendar pull (PULL_SCHEDULE).')
param pullSchedule string = '0 */5 * * * *'

@description('Days ahead room calendars are read for Outlook-side bookings (PULL_HORIZON_DAYS).')
@minValue(7)
@maxValue(730)
param pullHorizonDays int = 180

@description('NCRONTAB schedule (six fields, UTC) of the purge of expired pending authorizations (FLOW_PURGE_SCHEDULE).')
param flowPurgeSchedule string = '0 40 * * * *'
@description('Public https base URL Microsoft Graph posts change notifications to (NOTIFICATION_BASE_URL), without a trailing slash. Empty: the same as the public base URL (the app\'s default host name unless publicBaseUrl is set).')
param notificationBaseUrl string = ''

@description('NCRONTAB schedule (six fields, UTC) of the change-notification subscription maintenance: renewal, repair (SUBSCRIPTION_RENEW_SCHEDULE).')
param subscriptionRenewSchedule string = '0 20 * * * *'

@description('Minutes between safety-net pulls of a room whose change-notification subscription is live (PUSH_SWEEP_MINUTES).')
@minValue(5)
@maxValue(1440)
param pushSweepMinutes int = 60

@description('Seconds within which notifications of one room make one pull (PUSH_COALESCE_SECONDS).')
@minValue(1)
@maxValue(60)
param pushCoalesceSeconds int = 1

@description('Require each system\'s own key (x-system-key) on its /api/systems/{system}/... routes (SYSTEM_KEYS_REQUIRED). Turn off only for one trusted multi-tenant host app.')
param systemKeysRequired bool = true

@description('Serve the admin console at /api/console (CONSOLE_ENABLED), behind App Service Authentication: only with consoleAuthClientId and consoleAdminGroupId, otherwise it stays off.')
param consoleEnabled bool = false

@description('Application (client) ID of the Entra app registration admins sign in to the console with (App Service Authentication).')
param consoleAuthClientId string = ''

@description('Object ID of the Entra security group whose members may open the console.')
param consoleAdminGroupId string = ''

@description('Replication of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Memory per Function App instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the Function App scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Spread Function App instances across availability zones (only where Flex Consumption offers it).')
param zoneRedundant bool = false

// ---- What the code uses (tests/infra/test_template_matches_code.py keeps these lists in step with the code) ----

// Every table the app uses: the `table` of each TableRepository subclass under shared/.
var tableNames = [
  'integrations'
  'locations'
  'connections'
  'tokencaches'
  'pendingflows'
  'refreshdue'
  'alerts'
  'items'
  'syncrecords'
  'exportretries'
  'exportjobs'
  'exportchunks'
  'pulltargets'
  'roomsync'
  'systemkeys'
  'pushsubscriptions'
  'pushstate'
]

// Every queue the app uses: queue-triggered functions and *_QUEUE constants under shared/; each also gets
// <queue>-poison for the messages the Functions host gives up on (host.json maxDequeueCount).
var queueNames = [
  'token-refresh'
  'export-work'
  'room-pull'
  'webhook-delivery'
  'subscription-work'
]

// ---- Names ----

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'deployment-package'
// host.json is the single source of the HTTP route prefix; the redirect URI and ROUTE_PREFIX follow it.
var routePrefix = loadJsonContent('../host.json').extensions.http.routePrefix

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: 'st${resourceToken}'
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    tablePrefix: tablePrefix
    tables: tableNames
    queues: queueNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyVault'
  params: {
    location: location
    tags: tags
    name: 'kv-${resourceToken}'
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionApp'
  params: {
    location: location
    tags: tags
    name: functionAppName
    planName: 'plan-${resourceToken}'
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// The console is served only behind App Service Authentication restricted to the admin group.
var consoleOn = consoleEnabled && !empty(consoleAuthClientId) && !empty(consoleAdminGroupId)

module consoleAuth 'modules/console-auth.bicep' = if (consoleOn) {
  name: 'consoleAuth'
  params: {
    siteName: functionApp.outputs.name
    clientId: consoleAuthClientId
    adminGroupId: consoleAdminGroupId
    routePrefix: routePrefix
    openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
  }
}

var defaultBaseUrl = 'https://${functionApp.outputs.defaultHostName}'
var trimmedBaseUrl = take(publicBaseUrl, length(publicBaseUrl) - (endsWith(publicBaseUrl, '/') ? 1 : 0))
var effectiveBaseUrl = empty(publicBaseUrl) ? defaultBaseUrl : trimmedBaseUrl
var trimmedNotificationBaseUrl = take(notificationBaseUrl, length(notificationBaseUrl) - (endsWith(notificationBaseUrl, '/') ? 1 : 0))
var effectiveNotificationBaseUrl = empty(notificationBaseUrl) ? effectiveBaseUrl : trimmedNotificationBaseUrl

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// Every setting the code reads (shared/settings.py) or binds to (%SETTING% in triggers), in Azure form. Not set
// here, on purpose (tests/infra/test_template_matches_code.py lists the same, with reasons):
//   AzureWebJobsStorage       a connection string (with an account key); the identity-based AzureWebJobsStorage__*
//                             settings replace it, and a value here (even empty) could shadow them
//   WEBSITE_HOSTNAME          set by the platform
//   OUTBOUND_CA_BUNDLE, LOCAL_FUNCTION_KEY, LOCAL_MASTER_KEY   local stack only
//   FUNCTIONS_WORKER_RUNTIME  Flex Consumption takes the runtime from functionAppConfig.runtime instead
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  // Checkov reads every Microsoft.Web/sites/config resource as the site's web configuration; this one holds only app
  // settings. The site itself (modules/functionapp.bicep) is checked as Microsoft.Web/sites.
  properties: {
    //checkov:skip=CKV_AZURE_13:App settings only, not web configuration. Callers authenticate with function keys (anonymous routes are the OAuth flow, health and Microsoft Graph's change notifications); App Service Authentication would block the host app's key-based calls.
    //checkov:skip=CKV_AZURE_63:App settings only, not web configuration. Requests and logs go to Application Insights; App Service HTTP logging is not used.
    //checkov:skip=CKV_AZURE_65:App settings only, not web configuration. Detailed error pages are a web-server setting this Functions app does not use; errors are logged to Application Insights.
    //checkov:skip=CKV_AZURE_66:App settings only, not web configuration. Failed request tracing is a web-server setting this Functions app does not use; failures are traced in Application Insights.
    //checkov:skip=CKV_AZURE_80:App settings only, not web configuration. A Python app: there is no .NET Framework version.
    //checkov:skip=CKV_AZURE_88:App settings only, not web configuration. Flex Consumption runs from a blob deployment package and mounts no Azure Files share.
    //checkov:skip=CKV_AZURE_222:App settings only, not web configuration. Public network access is set (and its skip explained) on the site in modules/functionapp.bicep.
    AzureWebJobsStorage__accountName: storage.outputs.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsFeatureFlags: 'EnableWorkerIndexing'
    APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    STORAGE_ENDPOINT_SUFFIX: environment().suffixes.storage
    TABLE_PREFIX: tablePrefix
    KEY_VAULT_URL: keyVault.outputs.uri
    DATA_KEY_SECRET_NAME: dataKeySecretName
    IDENTITY_AUTHORITY_HOST: identityAuthorityHost
    GRAPH_BASE_URL: graphBaseUrl
    PUBLIC_BASE_URL: effectiveBaseUrl
    ROUTE_PREFIX: routePrefix
    OAUTH_FLOW_TTL_SECONDS: string(oauthFlowTtlSeconds)
    TOKEN_REFRESH_IDLE_DAYS: string(tokenRefreshIdleDays)
    TOKEN_SWEEP_SCHEDULE: tokenSweepSchedule
    SECRET_EXPIRY_WARN_DAYS: secretExpiryWarnDays
    ALERT_RESOLVED_RETENTION_DAYS: string(alertResolvedRetentionDays)
    GRAPH_GLOBAL_CONCURRENCY: string(graphGlobalConcurrency)
    EXPORT_RETRY_SCHEDULE: exportRetrySchedule
    PULL_SCHEDULE: pullSchedule
    PULL_HORIZON_DAYS: string(pullHorizonDays)
    FLOW_PURGE_SCHEDULE: flowPurgeSchedule
    SYSTEM_KEYS_REQUIRED: systemKeysRequired ? 'true' : 'false'
    NOTIFICATION_BASE_URL: effectiveNotificationBaseUrl
    SUBSCRIPTION_RENEW_SCHEDULE: subscriptionRenewSchedule
    PUSH_SWEEP_MINUTES: string(pushSweepMinutes)
    PUSH_COALESCE_SECONDS: string(pushCoalesceSeconds)
    CONSOLE_ENABLED: consoleOn ? 'true' : 'false'
  }
  dependsOn: [
    functionApp
    roles
  ]
}

@description('Name of the Function App (for func azure functionapp publish and az functionapp keys list).')
output FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Base URL of the Function App\'s HTTP API.')
output FUNCTION_APP_URL string = '${effectiveBaseUrl}/${routePrefix}'

@description('The redirect URI to register on each system\'s app registration (Web platform).')
output OAUTH_REDIRECT_URI string = '${effectiveBaseUrl}/${routePrefix}/oauth/callback'

@description('The change-notification URLs Microsoft Graph posts to (they must be reachable from the internet over https).')
output NOTIFICATION_URLS string = '${effectiveNotificationBaseUrl}/${routePrefix}/notifications/changes ${effectiveNotificationBaseUrl}/${routePrefix}/notifications/lifecycle'

@description('URI of the Key Vault that holds client secrets and the token-cache data key.')
output KEY_VAULT_URI string = keyVault.outputs.uri

@description('Object (principal) ID of the Function App\'s system-assigned managed identity.')
output FUNCTION_APP_PRINCIPAL_ID string = functionApp.outputs.principalId

@description('Name of the storage account (tables, queues, host storage, deployment package).')
output STORAGE_ACCOUNT_NAME string = storage.outputs.name

@description('Region of the deployment.')
output AZURE_LOCATION string = location

@description('The admin console (behind App Service Authentication), or empty when it is off.')
output CONSOLE_URL string = consoleOn ? '${effectiveBaseUrl}/${routePrefix}/console' : ''

@description('Microsoft Entra tenant of the subscription.')
output AZURE_TENANT_ID string = tenant().tenantId
