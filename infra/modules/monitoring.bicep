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

@description('Whether the alerts are on: tenants whose outcome changed to a failure, and the app\'s own credentials expiring within 30 days.')
param statusChangeAlertEnabled bool = false

@description('Action groups the status-change alert notifies (resource ids); none just records the alert.')
param alertActionGroupIds array = []

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

// The handler logs one "tenant status changed" line when a tenant's outcome
// changes (not on every sweep), one per key for a registered key; this
// fires on those that changed to a failure, one alert row per change. The
// host forwards the handler's JSON lines as traces.
resource statusChangeAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${appInsightsName}-tenant-status'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'tenantsweep: a tenant changed to a failing outcome'
    description: 'A customer tenant whose last outcome changed from ok (or another outcome) to a failure; the log line names the seed step and the fix.'
    enabled: statusChangeAlertEnabled
    severity: 2
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    scopes: [
      appInsights.id
    ]
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message has "tenant status changed"
| extend j = parse_json(substring(message, indexof(message, "{")))
| where tostring(j.to) != "ok"
| project timestamp, tenantId = tostring(j.tenantId), from = tostring(j.from), to = tostring(j.to),
          step = tostring(j.step), remediation = tostring(j.remediation),
          task = tostring(j.task), keyName = tostring(j.key), vaultUrl = tostring(j.vaultUrl)
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: alertActionGroupIds
    }
  }
}

// Each planned run logs one "app posture" line, at warn level when a
// credential of the app itself (its certificate file, or a secret or
// certificate of its registration) expires within 30 days. Evaluated every
// 6 hours: the line repeats with every run until the credential is rotated.
resource postureAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${appInsightsName}-app-posture'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'tenantsweep: a credential of the app expires soon'
    description: 'The app\'s own certificate or client secret expires within 30 days (or has expired): rotate it (docs/operations.md, section 2). A problem of the app, not of any tenant.'
    enabled: statusChangeAlertEnabled
    severity: 2
    evaluationFrequency: 'PT6H'
    windowSize: 'PT6H'
    scopes: [
      appInsights.id
    ]
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message has "app posture"
| extend j = parse_json(substring(message, indexof(message, "{")))
| where tostring(j.postureOk) == "false"
| summarize arg_max(timestamp, *) by posture = tostring(j.posture)
| project timestamp, posture
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: alertActionGroupIds
    }
  }
}

output appInsightsName string = appInsights.name
output workspaceName string = workspace.name
// The connection string names the component; with local auth off it cannot
// be used to send telemetry without an Entra token.
output connectionString string = appInsights.properties.ConnectionString
