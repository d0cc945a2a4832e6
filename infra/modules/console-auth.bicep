// App Service Authentication (Easy Auth) for the admin console: people must sign in with Microsoft Entra ID and be
// members of the admin group before /api/console is served. Every other route is an excluded path, so the host
// app keeps calling the API with its keys, and Microsoft's redirects and browsers reach the anonymous OAuth
// routes as before. Deployed by main.bicep only when the console is enabled.
//
// The Entra app registration named by clientId: platform Web, redirect URI https://<host>/.auth/login/aad/callback,
// ID tokens issued (no client secret is configured, so sign-in uses the ID token only), and the groups claim in its
// tokens (Token configuration > Add groups claim > Security groups), which the group check below reads:
// https://learn.microsoft.com/azure/app-service/configure-authentication-provider-aad#use-a-built-in-authorization-policy

@description('Name of the Function App.')
param siteName string

@description('Application (client) ID of the Entra app registration admins sign in to the console with.')
param clientId string

@description('Object ID of the Entra security group whose members may open the console.')
param adminGroupId string

@description('The HTTP route prefix (host.json), e.g. api.')
param routePrefix string

@description('Issuer of the tokens: the Entra tenant\'s v2.0 endpoint.')
param openIdIssuer string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    //checkov:skip=CKV_AZURE_13:This resource is App Service Authentication itself; checkov reads every sites/config as web configuration.
    //checkov:skip=CKV_AZURE_63:Authentication settings only, not web configuration. Requests and logs go to Application Insights; App Service HTTP logging is not used.
    //checkov:skip=CKV_AZURE_65:Authentication settings only, not web configuration. Detailed error pages are a web-server setting this Functions app does not use.
    //checkov:skip=CKV_AZURE_66:Authentication settings only, not web configuration. Failed request tracing is a web-server setting this Functions app does not use.
    //checkov:skip=CKV_AZURE_80:Authentication settings only, not web configuration. A Python app: there is no .NET Framework version.
    //checkov:skip=CKV_AZURE_88:Authentication settings only, not web configuration. Flex Consumption runs from a blob deployment package and mounts no Azure Files share.
    //checkov:skip=CKV_AZURE_222:Authentication settings only, not web configuration. Public network access is set (and its skip explained) on the site in modules/functionapp.bicep.
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      // Everything but the console: the API (function key, system key), the operator's and the host's admin routes
      // (master key), and the anonymous routes browsers and Microsoft call.
      excludedPaths: [
        '/${routePrefix}/health'
        '/${routePrefix}/openapi.json'
        '/${routePrefix}/oauth/*'
        '/${routePrefix}/notifications*'
        '/${routePrefix}/systems/*'
        '/admin/*'
        '/runtime/*'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: openIdIssuer
        }
        validation: {
          allowedAudiences: [
            clientId
            'api://${clientId}'
          ]
          defaultAuthorizationPolicy: {
            allowedPrincipals: {
              groups: [
                adminGroupId
              ]
            }
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
