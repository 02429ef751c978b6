// Log Analytics and a workspace-based Application Insights that accepts only
// Microsoft Entra-authenticated telemetry (local auth off), so the Functions
// host sends it with the app's managed identity.

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Region of both.')
param location string

@description('Tags of both.')
param tags object

@description('Days the workspace keeps logs.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Role assignments on the Application Insights component: [{ principalId, principalType?, roleId }].')
param roleAssignments array = []

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for a in roleAssignments: {
    name: guid(appInsights.id, a.principalId, a.roleId)
    scope: appInsights
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleId)
      principalId: a.principalId
      // Omitted for an existing principal whose type the caller does not know.
      principalType: a.?principalType
    }
  }
]

output appInsightsName string = appInsights.name
output workspaceName string = workspace.name
// The connection string names the component; with local auth off it cannot
// be used to send telemetry without an Entra token.
output connectionString string = appInsights.properties.ConnectionString
