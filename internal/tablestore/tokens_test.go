package tablestore_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// A tenant's shared tokens live in its row: GetMany (the sweep's read of a
// message) brings them with their ciphertexts, listings bring what the
// planner needs and not the ciphertexts, the API's JSON never shows them,
// and a change applied again after losing a race keeps the newer token.
func TestSharedTokensInTheRow(t *testing.T) {
	t.Parallel()
	s, reg := openWithRegistry(t)
	id := newID(t, "7")
	seed(t, s, []string{id}, active)
	now := time.Now().UTC().Truncate(time.Second)
	tok := func(res string, issued time.Duration, seal string) tenant.SharedToken {
		return tenant.SharedToken{Resource: res, IssuedAt: now.Add(issued), ExpiresOn: now.Add(issued + time.Hour), Key: "k1", Sealed: seal}
	}
	put := func(base tenant.Record, toks ...tenant.SharedToken) error {
		return s.MutateMany(t.Context(), []tenant.Change{{Base: base, Apply: func(rec *tenant.Record) {
			tenant.MergeShared(rec, tenant.SharedUpdate{Put: toks}, now)
		}}})[0]
	}
	base := get(t, s, id)
	if err := put(base, tok("https://graph.microsoft.com", -10*time.Minute, "SEALED-graph-old"), tok("https://vault.azure.net", -10*time.Minute, "SEALED-vault")); err != nil {
		t.Fatal(err)
	}
	recs, err := s.GetMany(t.Context(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[id].Shared.Tokens; len(got) != 2 || got[0].Sealed == "" || got[1].Sealed == "" {
		t.Fatalf("GetMany tokens %+v", got)
	}

	// Another instance writes a newer Graph token; ours, from the older
	// read, loses the race, is re-read and re-applied: the newer stays.
	stale := recs[id]
	if err := put(stale, tok("https://graph.microsoft.com", -time.Minute, "SEALED-graph-newer")); err != nil {
		t.Fatal(err)
	}
	if err := put(stale, tok("https://graph.microsoft.com", -5*time.Minute, "SEALED-graph-mine")); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, id).Shared.Tokens
	seals := map[string]string{}
	for _, st := range got {
		seals[st.Resource] = st.Sealed
	}
	if seals["https://graph.microsoft.com"] != "SEALED-graph-newer" || seals["https://vault.azure.net"] != "SEALED-vault" {
		t.Errorf("after the race: %v", seals)
	}

	// Listings: what the planner needs, without the ciphertexts.
	page, err := s.List(t.Context(), 10, "")
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("list: %v %v", page, err)
	}
	listed := page.Records[0]
	if due, n := listed.TokensDue(30 * time.Minute); n != 2 || !due.Equal(now.Add(20*time.Minute)) {
		t.Errorf("listed tokens due %v (%d), want %v (2)", due, n, now.Add(20*time.Minute))
	}
	for _, st := range listed.Shared.Tokens {
		if st.Sealed != "" {
			t.Error("a listing brought a ciphertext")
		}
	}
	var active []tenant.Record
	if err := s.EachActive(t.Context(), func(recs []tenant.Record) error { active = append(active, recs...); return nil }); err != nil || len(active) != 1 {
		t.Fatalf("EachActive: %v %v", active, err)
	}
	if _, n := active[0].TokensDue(time.Minute); n != 2 || active[0].Shared.Tokens[0].Sealed != "" {
		t.Errorf("EachActive tokens %+v", active[0].Shared.Tokens)
	}
	if b, _ := json.Marshal(recs[id]); strings.Contains(string(b), "SEALED") || strings.Contains(strings.ToLower(string(b)), `"tokens"`) {
		t.Errorf("the record's JSON shows its tokens: %s", b)
	}

	// A record read from a listing and written back (nothing does that
	// today) writes no tokens rather than tokens without ciphertexts.
	if err := s.MutateMany(t.Context(), []tenant.Change{{Base: listed, Apply: func(*tenant.Record) {}}})[0]; err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, id).Shared.Tokens; len(got) != 0 {
		t.Errorf("tokens after writing a listed record: %+v", got)
	}

	// What the row holds in the clear: no ciphertext in Tokens, nothing but
	// ciphertexts in TokenSeals.
	if err := put(get(t, s, id), tok("https://graph.microsoft.com", 0, "SEALED-x")); err != nil {
		t.Fatal(err)
	}
	svc, err := aztables.NewServiceClientFromConnectionString(reg.Connection, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := svc.NewClient(reg.Table).GetEntity(t.Context(), id[:2], id, nil)
	if err != nil {
		t.Fatal(err)
	}
	var props map[string]any
	_ = json.Unmarshal(raw.Value, &props)
	meta, _ := props["Tokens"].(string)
	if meta == "" || strings.Contains(meta, "SEALED") || props["TokenSeals"] != `["SEALED-x"]` {
		t.Errorf("row properties Tokens=%q TokenSeals=%v", meta, props["TokenSeals"])
	}
}
