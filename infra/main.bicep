// tenantsweep: everything `azd up` provisions in the developer's subscription.
// infra/README.md explains the layout and docs/operations.md the operations.
//
// The app settings below are the app's whole configuration. Every setting the
// Go code reads (internal/config.Settings) is set here or named in
// infra/infra_test.go with the reason it is left unset; the test fails when
// the two drift apart.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the name of every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Resource group to create or reuse; empty means rg-<environmentName>.')
param resourceGroupName string = ''

@minLength(36)
@maxLength(36)
@description('Application (client) id of the multi-tenant app registration. Run infra/scripts/register-app.sh first; it sets APP_CLIENT_ID in the azd environment.')
param appClientId string

@allowed([
  'federated'
  'keyvault-secret'
  'certificate'
])
@description('How the app proves its identity: federated (the managed identity is a federated credential of the app, no secret), keyvault-secret (a client secret the app reads from this Key Vault) or certificate (advanced, see docs/operations.md).')
param credentialMethod string = 'federated'

@description('keyvault-secret method: name of the Key Vault secret that holds the client secret (infra/scripts/register-app.sh writes it).')
param appSecretName string = 'app-client-secret'

@description('certificate method: path of the PEM or PKCS#12 file on the instance, for example on an Azure Files mount.')
param certificatePath string = ''

@description('certificate method: name of the Key Vault secret holding the PKCS#12 password; empty when the file has none.')
param certificatePasswordSecretName string = ''

@description('Six-field NCRONTAB schedule of TenantSweep.')
param tenantSweepSchedule string = '0 */15 * * * *'

@minValue(1)
@maxValue(1000)
@description('Tenants one sweep processes at once.')
param sweepConcurrency int = 64

@minValue(1)
@maxValue(100000)
@description('Microsoft Graph requests a second a run may send across all instances ($batch steps counted); the planner paces runs to it. Graph allows an app 7,500 identity resource units a second.')
param sweepGraphRate int = 5000

@minValue(1)
@maxValue(100000)
@description('Token requests a second to Entra ID a run may send across all instances; the planner paces runs to it.')
param sweepTokenRate int = 2000

@description('How long after its issue a token the instances share is used (Go duration, 1s to 55m): a revoked consent shows within it.')
param tokenFreshness string = '30m'

@description('Time budget of one tenant in a sweep (Go duration).')
param sweepTenantTimeout string = '60s'

@description('Wall-time budget of one sweep; empty derives it from host.json functionTimeout.')
param sweepBudget string = ''

@minLength(3)
@maxLength(56)
@description('Storage queue that TenantSweep fills with work and SweepWorker drains; <name>-poison receives the messages that failed maxDequeueCount times. 3-56 lower-case letters, digits and single hyphens (the poison suffix must fit in 63).')
param sweepQueue string = 'tenantsweep-work'

@minValue(1)
@maxValue(256)
@description('Tenants per work message: one message is one SweepWorker invocation.')
param sweepMessageTenants int = 16

@description('Longest a repeatedly failing tenant is skipped.')
param sweepBackoffMax string = '24h'

@description('Deadline of each tenant registry call.')
param registryTimeout string = '10s'

@description('The per-tenant tasks that run, comma-separated (SWEEP_TASKS; `bin/handler tasks` lists them). Each task declares the Graph permissions it needs: register the app with the same list (infra/scripts/register-app.sh reads SWEEP_TASKS from the azd environment).')
param sweepTasks string = 'access,keys'

@description('A customer secret expiring within this duration is flagged.')
param secretExpiryWarning string = '720h'

@description('Time budget of the verification that follows onboarding.')
param onboardVerifyTimeout string = '10s'

@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
@description('Log level of the handler.')
param logLevel string = 'info'

@minValue(40)
@maxValue(1000)
@description('Most instances the Function App scales out to (Flex Consumption: 40 to 1000), shared by every scale group: SweepWorker scales on its own instances by the work queue\'s length, the HTTP functions on theirs, TenantSweep on one.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance, in MB.')
param instanceMemoryMB int = 2048

@description('Turns on the Application Insights alerts on tenants whose outcome changed to a failure and on the app\'s own credentials expiring within 30 days (off by default).')
param tenantStatusAlertEnabled bool = false

@description('Action groups (resource ids) the tenant status alert notifies.')
param alertActionGroupIds array = []

@description('Object id of the person or pipeline running azd (azd sets AZURE_PRINCIPAL_ID): it may write the app secret and the state key to the vault and read the run history. Empty grants nothing. Its principal type is left to Azure, so a user and a CI service principal both work.')
param principalId string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var serviceName = 'tenantsweep'
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var registryTable = 'tenants'
var runsTable = 'sweepruns'
var stateKeySecretName = 'onboard-state-key'
// The key that seals the tokens the instances share (TOKEN_SHARING_KEY),
// created once by infra/scripts/postprovision.sh like the state key.
var tokenKeySecretName = 'token-sharing-key'

// AZURE_CLOUD of the app, from the cloud this deployment runs in.
var cloudNames = {
  AzureCloud: 'AzurePublic'
  AzureUSGovernment: 'AzureUSGovernment'
  AzureChinaCloud: 'AzureChina'
}
var cloudName = cloudNames[environment().name]
var webHostSuffixes = {
  AzurePublic: 'azurewebsites.net'
  AzureUSGovernment: 'azurewebsites.us'
  AzureChina: 'chinacloudsites.cn'
}
var onboardRedirectUri = 'https://${functionAppName}.${webHostSuffixes[cloudName]}/api/consent/callback'

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
// Each key is the role's name in lower camel case (infra_test.go checks it).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    roleAssignments: [
      // The host sends telemetry with the identity (local auth is off).
      { principalId: identity.outputs.principalId, principalType: 'ServicePrincipal', roleId: roles.monitoringMetricsPublisher }
    ]
    statusChangeAlertEnabled: tenantStatusAlertEnabled
    alertActionGroupIds: alertActionGroupIds
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    tableNames: [
      registryTable
      runsTable
    ]
    workQueueName: sweepQueue
    // No queue role on the whole account: the host itself keeps its state in
    // blobs (no blob trigger here, which would need queues), so the identity
    // gets queue rights on the two queues of the pipeline only.
    //
    // The work queue, one role: Storage Queue Data Contributor. The queue
    // trigger (identity-based AzureWebJobsStorage) peeks and reads the queue's
    // properties for scaling (queues/read, messages/read), gets and deletes
    // messages (messages/process/action) and updates them to renew the lease
    // of a running invocation or to release a failed one after
    // visibilityTimeout (Update Message, messages/write). TenantSweep puts
    // work messages (Put Message) and reads the approximate message count
    // (Get Queue Properties). Update Message is in no narrower built-in role:
    // Reader + Message Processor, which the Functions docs list for the
    // trigger, lack messages/write, and the host's release then fails with 403
    // (MicrosoftDocs/azure-docs#120932). A custom role would trim
    // queues/write, queues/delete and messages/delete (clear) off this one
    // queue; that is the only excess.
    workQueueRoleAssignments: [
      { principalId: identity.outputs.principalId, principalType: 'ServicePrincipal', roleId: roles.storageQueueDataContributor }
    ]
    poisonQueueRoleAssignments: [
      // The host adds a message here after maxDequeueCount failed deliveries
      // (Put Message, messages/add/action), and nothing else.
      { principalId: identity.outputs.principalId, principalType: 'ServicePrincipal', roleId: roles.storageQueueDataMessageSender }
      // `handler runs` peeks the poisoned messages (messages/read) and reads
      // their count (queues/read); it never takes or deletes them.
      { principalId: identity.outputs.principalId, principalType: 'ServicePrincipal', roleId: roles.storageQueueDataReader }
    ]
    roleAssignments: concat(
      [
        // The host's blobs (timer schedule monitor, singleton locks) and the deployment package.
        { principalId: identity.outputs.principalId, principalType: 'ServicePrincipal', roleId: roles.storageBlobDataOwner }
        // The tenant registry and the sweep run history.
        { principalId: identity.outputs.principalId, principalType: 'ServicePrincipal', roleId: roles.storageTableDataContributor }
      ],
      empty(principalId)
        ? []
        : [
            // Lets the operator read the run history (docs/operations.md).
            { principalId: principalId, roleId: roles.storageTableDataReader }
          ]
    )
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    roleAssignments: concat(
      [
        // APP_CLIENT_SECRET_URI (read by the app) and ONBOARD_STATE_KEY (a Key Vault reference).
        { principalId: identity.outputs.principalId, principalType: 'ServicePrincipal', roleId: roles.keyVaultSecretsUser }
      ],
      empty(principalId)
        ? []
        : [
            // Lets register-app.sh and postprovision.sh write the secrets.
            { principalId: principalId, roleId: roles.keyVaultSecretsOfficer }
          ]
    )
  }
}

// The app's own settings, one per internal/config.Settings entry.
var appSettings = {
  TENANT_REGISTRY_ENDPOINT: storage.outputs.tableEndpoint
  TENANT_REGISTRY_TABLE: registryTable
  SWEEP_RUNS_TABLE: runsTable
  TENANT_REGISTRY_TIMEOUT: registryTimeout
  TenantSweepSchedule: tenantSweepSchedule
  AZURE_CLOUD: cloudName
  APP_CLIENT_ID: appClientId
  // The app is registered in the tenant it is deployed from (register-app.sh).
  APP_TENANT_ID: tenant().tenantId
  AZURE_CLIENT_ID: identity.outputs.clientId
  SWEEP_TASKS: sweepTasks
  SECRET_EXPIRY_WARNING: secretExpiryWarning
  SWEEP_CONCURRENCY: string(sweepConcurrency)
  SWEEP_GRAPH_RATE: string(sweepGraphRate)
  SWEEP_TOKEN_RATE: string(sweepTokenRate)
  TOKEN_FRESHNESS: tokenFreshness
  // Generated once by infra/scripts/postprovision.sh; resolved by the platform with the identity.
  TOKEN_SHARING_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${tokenKeySecretName}/)'
  SWEEP_TENANT_TIMEOUT: sweepTenantTimeout
  SWEEP_BACKOFF_MAX: sweepBackoffMax
  SWEEP_QUEUE: sweepQueue
  SWEEP_MESSAGE_TENANTS: string(sweepMessageTenants)
  ONBOARD_VERIFY_TIMEOUT: onboardVerifyTimeout
  ONBOARD_REDIRECT_URI: onboardRedirectUri
  // Generated once by infra/scripts/postprovision.sh; resolved by the platform with the identity.
  ONBOARD_STATE_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${stateKeySecretName}/)'
  LOG_LEVEL: logLevel
}

// Set only when overriding the budget derived from host.json.
var sweepBudgetSettings = {
  SWEEP_BUDGET: sweepBudget
}

// The Functions host's own connections, all with the identity. The app
// reads AzureWebJobsStorage__queueServiceUri too: TenantSweep enqueues where
// the SweepWorker trigger reads.
var hostSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

// Exactly one credential method's settings are applied.
var federatedSettings = {
  APP_FEDERATED_IDENTITY_CLIENT_ID: identity.outputs.clientId
}
var keyVaultSecretSettings = {
  APP_CLIENT_SECRET_URI: '${keyVault.outputs.uri}secrets/${appSecretName}'
}
var certificateSettings = {
  APP_CLIENT_CERTIFICATE_PATH: certificatePath
}
var certificatePasswordSettings = {
  APP_CLIENT_CERTIFICATE_PASSWORD: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${certificatePasswordSecretName}/)'
}
var credentialSettings = credentialMethod == 'federated'
  ? federatedSettings
  : credentialMethod == 'keyvault-secret'
      ? keyVaultSecretSettings
      : union(certificateSettings, empty(certificatePasswordSecretName) ? {} : certificatePasswordSettings)

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    serviceName: serviceName
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    appSettings: union(
      appSettings,
      empty(sweepBudget) ? {} : sweepBudgetSettings,
      hostSettings,
      credentialSettings
    )
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLOUD string = cloudName
output FUNCTION_APP_NAME string = functionApp.outputs.name
// The onboarding webhook; callers add the function key (x-functions-key header).
output FUNCTION_URL string = 'https://${functionApp.outputs.defaultHostName}/api/tenants'
output ONBOARD_REDIRECT_URI string = onboardRedirectUri
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output KEY_VAULT_NAME string = keyVault.outputs.name
output KEY_VAULT_URI string = keyVault.outputs.uri
output APP_CREDENTIAL_METHOD string = credentialMethod
output APP_VAULT_ENTRY string = appSecretName
output STATE_KEY_VAULT_ENTRY string = stateKeySecretName
output TOKEN_KEY_VAULT_ENTRY string = tokenKeySecretName
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output TENANT_REGISTRY_TABLE string = registryTable
output SWEEP_RUNS_TABLE string = runsTable
output SWEEP_QUEUE string = storage.outputs.workQueueName
output SWEEP_POISON_QUEUE string = storage.outputs.poisonQueueName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
