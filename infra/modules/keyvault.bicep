// The developer tenant's Key Vault, in RBAC mode: it holds the app's client
// secret (credential method "keyvault-secret"), an optional certificate
// password, and the key that signs the admin-consent state. Nothing here
// writes a secret value: scripts do, with the deployer's data-plane role.

@description('Name of the vault (3-24 letters, digits and dashes).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the vault.')
param location string

@description('Tags of the vault.')
param tags object

@description('Role assignments on the vault: [{ principalId, principalType?, roleId }].')
param roleAssignments array = []

resource vault 'Microsoft.KeyVault/vaults@2025-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for a in roleAssignments: {
    name: guid(vault.id, a.principalId, a.roleId)
    scope: vault
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleId)
      principalId: a.principalId
      // Omitted for an existing principal whose type the caller does not know.
      principalType: a.?principalType
    }
  }
]

output name string = vault.name
// Ends with a slash: https://<name>.vault.azure.net/
output uri string = vault.properties.vaultUri
