package onboard

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// docs/openapi.json lists every outcome code the app reports, and no other,
// in the vocabulary's order.
func TestOpenAPIOutcomesAreTheCodes(t *testing.T) {
	var o struct{ Enum []string }
	if err := json.Unmarshal(readOpenAPI(t).Comps.Schemas["Outcome"], &o); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, c := range outcome.Codes {
		codes = append(codes, string(c))
	}
	if !slices.Equal(o.Enum, codes) {
		t.Errorf("docs/openapi.json Outcome enum\n %v\noutcome.Codes\n %v", o.Enum, codes)
	}
}

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
