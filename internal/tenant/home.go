package tenant

// Home is where Microsoft Entra ID says a tenant lives: what the tenant's
// OpenID metadata, which needs no credential, tells before the tenant is
// recorded. Entra ID's public endpoint finds the tenants of the US
// Government cloud too (and says so here); it does not find those of
// Microsoft Azure operated by 21Vianet.
type Home struct {
	// Instance is cloud_instance_name: microsoftonline.com,
	// microsoftonline.us or partner.microsoftonline.cn.
	Instance string `json:"cloudInstance,omitempty"`
	// RegionScope and RegionSubScope are tenant_region_scope (NA, EU, AS,
	// USGov...) and tenant_region_sub_scope (GCC, DODCON, DOD).
	RegionScope    string `json:"regionScope,omitempty"`
	RegionSubScope string `json:"regionSubScope,omitempty"`
}
