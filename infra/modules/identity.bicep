// The user-assigned managed identity the Function App runs as. It reaches the
// storage account (host and registry), the developer's Key Vault and
// Application Insights, and in the "federated" credential method it is the
// credential the multi-tenant app trusts (seed step 1 without a secret).

@description('Name of the identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags of the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
