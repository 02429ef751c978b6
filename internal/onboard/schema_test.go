package onboard

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// The fields docs/openapi.json gives a vault entry are those the strict
// decoder knows.
func TestOpenAPIKeyVaultFieldsAreTheDecoders(t *testing.T) {
	var kv struct{ Properties map[string]json.RawMessage }
	if err := json.Unmarshal(readOpenAPI(t).Comps.Schemas["KeyVault"], &kv); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(kv.Properties))
	want := slices.Sorted(slices.Values(fieldNames["keyVaults[]"]))
	if !slices.Equal(got, want) {
		t.Errorf("KeyVault properties %v, decoder fields %v", got, want)
	}
}
