//go:build demo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
)

// demoSample is one sample customer tenant of the demo: what its admin did
// of the seed's steps, and so the outcome the app reports.
type demoSample struct {
	id, name, story string
	tenant          cloudtest.Tenant
	vault           *cloudtest.Vault
	secret          string // registered in the vault; "" registers none
}

func demoSamples() []demoSample {
	secret := func(v string) map[string]cloudtest.Secret {
		return map[string]cloudtest.Secret{"db-password": {Value: v, Enabled: true, ExpiresOn: time.Now().Add(400 * 24 * time.Hour)}}
	}
	// The access task's permissions, not groups': one tenant consented
	// before the app asked for Group.Read.All.
	accessOnly := task.Permissions([]task.Task{tasks.Access{}})
	return []demoSample{
		{id: "c0a7c0a7-0000-4000-8000-00000000c001", name: "Contoso", story: "did every step: ok",
			tenant: cloudtest.Tenant{OrgName: "Contoso", Users: 250, Groups: 31, GraphRoles: demoRoles()},
			vault:  &cloudtest.Vault{Secrets: secret("contoso-demo-value")}, secret: "db-password"},
		{id: "fab00000-0000-4000-8000-00000000fab1", name: "Fabrikam", story: "added the app but never granted admin consent (step 4)",
			// No consent: Entra ID's Graph token carries no roles, and
			// Graph refuses every read.
			tenant: cloudtest.Tenant{OrgName: "Fabrikam", GraphStatus: http.StatusForbidden, GraphToken: cloudtest.TokenNoRoles}},
		{id: "7a115010-0000-4000-8000-0000000007a1", name: "Tailspin", story: "gave the app no role on its vault (step 5)",
			tenant: cloudtest.Tenant{OrgName: "Tailspin", Users: 40, Groups: 3, GraphRoles: demoRoles()},
			vault:  &cloudtest.Vault{Status: http.StatusForbidden}, secret: "db-password"},
		{id: "40e70000-0000-4000-8000-000000000407", name: "Northwind", story: "has not added the app yet (step 3)",
			tenant: cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant}},
		{id: "b00dbe0d-0000-4000-8000-00000000b00d", name: "Woodgrove", story: "registered a secret its vault does not have (step 5)",
			tenant: cloudtest.Tenant{OrgName: "Woodgrove", Users: 12, Groups: 2, GraphRoles: demoRoles()},
			vault:  &cloudtest.Vault{Secrets: map[string]cloudtest.Secret{}}, secret: "db-password"},
		{id: "11710000-0000-4000-8000-000000001171", name: "Litware", story: "consented before the app asked for Group.Read.All: access ok, groups not (step 4 again)",
			tenant: cloudtest.Tenant{OrgName: "Litware", Users: 9, Groups: 4, GraphRoles: accessOnly}},
	}
}

// demoRoles are the Graph permissions of every built-in task: what an admin
// who consented to the whole app registration granted.
func demoRoles() []string { return task.Permissions(tasks.All(tasks.Deps{})) }

// startDemo starts the fakes of Entra ID, Graph and Key Vault in this
// process, with the demo app registered and the sample tenants in them.
func startDemo() (*demoWorld, error) {
	c, err := cloudtest.New()
	if err != nil {
		return nil, fmt.Errorf("demo: start the fakes: %w", err)
	}
	c.SetApp(cloudtest.DefaultApp)
	for _, s := range demoSamples() {
		c.AddTenant(s.id, s.tenant)
		if s.vault != nil {
			c.AddVault(vaultName(s), s.id, *s.vault)
		}
	}
	return &demoWorld{appID: cloudtest.DefaultApp.ClientID, secret: cloudtest.DefaultApp.Secret,
		transport: c.HTTPClient(), close: c.Close, seed: seedDemo}, nil
}

func vaultName(s demoSample) string { return fmt.Sprintf("demo-%s-kv", s.id[:8]) }

// seedDemo onboards the sample tenants through the app's own API (so each
// is verified as a customer's onboarding is), then plans a sweep at once.
func seedDemo(ctx context.Context, a *app, base string, log zerolog.Logger) {
	for _, s := range demoSamples() {
		body := map[string]any{"tenantId": s.id, "displayName": s.name, "graph": true}
		if s.secret != "" {
			body["keyVaults"] = []map[string]any{{"vaultUrl": cloudtest.VaultURL(vaultName(s)), "secrets": []string{s.secret}}}
		}
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/tenants", bytes.NewReader(b))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Error().Err(err).Str("tenantId", s.id).Msg("demo: onboarding a sample tenant failed")
			return
		}
		var rec struct {
			Verification struct {
				Outcome string `json:"outcome"`
				Step    string `json:"step"`
			} `json:"verification"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&rec)
		resp.Body.Close()
		log.Info().Str("tenantId", s.id).Str("name", s.name).Str("story", s.story).Str("outcome", rec.Verification.Outcome).
			Str("step", rec.Verification.Step).Msg("demo: sample tenant onboarded and verified")
	}
	planNow(ctx, a, log, "demo")
}

// planNow plans a sweep at once, as the timer would.
func planNow(ctx context.Context, a *app, log zerolog.Logger, trigger string) {
	ictx, ilog := funchost.Begin(ctx, log, sweepFunction, "")
	run, err := a.planner.Plan(ictx, sweep.Request{ID: funchost.InvocationID(ictx), Trigger: trigger})
	if err != nil {
		ilog.Warn().Err(err).Msg("sweep not planned")
		return
	}
	ilog.Info().Msg(run.PlanString())
}
