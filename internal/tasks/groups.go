package tasks

import (
	"context"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Groups counts the tenant's groups: the worked example of a task, the
// seed's own daemon work (its sample lists a tenant's users and groups).
// Copy this file to start a task of your own; README's "Add your own
// per-tenant work" walks through it. It is off unless SWEEP_TASKS names it.
type Groups struct{}

// About declares the task: its name, the Graph permission the customer's
// admin consents to for it (the first alternative is what the app
// registration asks for; the others also satisfy it), and that onboarding
// verification runs it, so a tenant that has not granted the permission
// hears of it at once.
func (Groups) About() task.About {
	return task.About{
		Name:   "groups",
		Graph:  []string{"Group.Read.All|GroupMember.Read.All|Directory.Read.All"},
		Verify: true,
	}
}

// Needs: a Graph token, in every tenant that registered Graph.
func (Groups) Needs(rec tenant.Record) (task.Needs, bool) {
	return task.Needs{Graph: true}, rec.Graph
}

// GroupCount is what Groups records, as lastSweep.tasks.groups.body.
type GroupCount struct {
	Groups int `json:"groups"`
}

// Run asks Graph for the number of groups ($count is an advanced query:
// it needs ConsistencyLevel: eventual). An error is returned as the SDK
// gave it: the Runner classifies it (403: graph_consent_missing, 429:
// throttled, ...) and a missing permission never gets this far.
func (Groups) Run(ctx context.Context, t *task.Tenant) (any, error) {
	h := abs.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	n, err := t.Graph().Groups().Count().Get(ctx, &groups.CountRequestBuilderGetRequestConfiguration{Headers: h})
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, outcome.New(outcome.UpstreamError, "Microsoft Graph answered no group count", nil)
	}
	return GroupCount{Groups: int(*n)}, nil
}
