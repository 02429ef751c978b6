// The storage account: the Functions host's blobs, the Flex Consumption
// deployment container, the sweep pipeline's two queues (the work queue and
// its poison queue) and the two tables of the app (tenant registry and sweep
// run history). Shared keys are off: every client, the host included, uses
// Microsoft Entra ID.

@description('Name of the account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the account.')
param location string

@description('Tags of the account.')
param tags object

@description('Blob container that Flex Consumption deploys the app package from.')
param deploymentContainerName string

@description('Tables to create (the app also creates them when missing).')
param tableNames array

@description('Work queue that TenantSweep fills and SweepWorker drains (SWEEP_QUEUE). Its poison queue is this name + \'-poison\', so at most 56 characters (queue names are 3-63).')
@minLength(3)
@maxLength(56)
param workQueueName string

@description('Role assignments on the account: [{ principalId, principalType?, roleId }].')
param roleAssignments array = []

@description('Role assignments on the work queue only: [{ principalId, principalType?, roleId }].')
param workQueueRoleAssignments array = []

@description('Role assignments on the poison queue only: [{ principalId, principalType?, roleId }].')
param poisonQueueRoleAssignments array = []

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' = [
  for t in tableNames: {
    parent: tableService
    name: t
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' = {
  parent: account
  name: 'default'
}

// Both queues exist before the app starts. The host moves a message to the
// poison queue by adding it there and creates the queue only when that fails
// with QueueNotFound, so with the queue in place the identity needs no right
// to create queues on it.
resource workQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = {
  parent: queueService
  name: workQueueName
}

// The Functions queue trigger's naming convention: <queue>-poison.
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = {
  parent: queueService
  name: '${workQueueName}-poison'
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for a in roleAssignments: {
    name: guid(account.id, a.principalId, a.roleId)
    scope: account
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleId)
      principalId: a.principalId
      // Omitted for an existing principal whose type the caller does not know.
      principalType: a.?principalType
    }
  }
]

resource workQueueAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for a in workQueueRoleAssignments: {
    name: guid(workQueue.id, a.principalId, a.roleId)
    scope: workQueue
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleId)
      principalId: a.principalId
      principalType: a.?principalType
    }
  }
]

resource poisonQueueAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for a in poisonQueueRoleAssignments: {
    name: guid(poisonQueue.id, a.principalId, a.roleId)
    scope: poisonQueue
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleId)
      principalId: a.principalId
      principalType: a.?principalType
    }
  }
]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output workQueueName string = workQueue.name
output poisonQueueName string = poisonQueue.name
