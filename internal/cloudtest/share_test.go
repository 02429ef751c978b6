package cloudtest_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

// With ShareRSAKeys(1), keys of different vaults share their material, and
// each vault still unwraps what was wrapped with its key's public part.
func TestShareRSAKeys(t *testing.T) {
	c, first := startKeys(t, map[string]cloudtest.Key{"a": {Enabled: true}})
	c.ShareRSAKeys(1)
	c.AddVault("kv-shared", tenantA, cloudtest.Vault{Keys: map[string]cloudtest.Key{"b": {Enabled: true}}})
	second := keysClient(t, c, "kv-shared")
	ka, err := first.GetKey(context.Background(), "a", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := second.GetKey(context.Background(), "b", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := rsaPublic(t, ka.Key), rsaPublic(t, kb.Key)
	if pa.N.Cmp(pb.N) != 0 {
		t.Error("the second vault's key has its own material")
	}
	dek := newDEK(t)
	alg := azkeys.EncryptionAlgorithmRSAOAEP256
	out, err := second.UnwrapKey(context.Background(), "b", kb.Key.KID.Version(),
		azkeys.KeyOperationParameters{Algorithm: &alg, Value: wrapLocally(t, pb, dek)}, nil)
	if err != nil || string(out.Result) != string(dek) || c.UnwrapCount("kv-shared", "b") != 1 {
		t.Errorf("unwrap with the shared material: %v", err)
	}
}
