package sweep

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

// countQueue counts what is enqueued and remembers the last delay.
type countQueue struct {
	n    int
	last time.Duration
}

func (q *countQueue) EnqueueAfter(_ context.Context, _ string, delay time.Duration) error {
	q.n++
	q.last = max(q.last, delay)
	return nil
}

func (q *countQueue) Pending(context.Context) (int, error) { return 0, nil }

// BenchmarkPlanPacing plans 100,000 tenants at the default budgets (5,000
// Graph and 2,000 token requests a second), from an in-memory registry:
// when no tenant shares a token (every one signs in, so the token budget
// binds) and when every one shares fresh tokens (only Graph's counts), and
// reports each plan's span. The real registry and queue, and the planner's
// memory, are BenchmarkPlanner's (handler).
func BenchmarkPlanPacing(b *testing.B) {
	const n = 100000
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("tenants=%d/shared=%v", n, shared), func(b *testing.B) {
			reg := tenanttest.New()
			now := time.Now()
			for i := range n {
				rec := tenant.Record{TenantID: fmt.Sprintf("%08x-1111-4222-8333-%012x", i*2654435761%0xffffffff, i), Status: tenant.StatusActive, Graph: true}
				if shared {
					rec.Shared.Tokens = []tenant.SharedToken{
						{Resource: "https://graph.microsoft.com", IssuedAt: now, ExpiresOn: now.Add(time.Hour), Sealed: "x"},
						{Resource: "https://vault.azure.net", IssuedAt: now, ExpiresOn: now.Add(time.Hour), Sealed: "x"}}
				}
				reg.Put(rec)
			}
			for range b.N {
				q := &countQueue{}
				p := NewPlanner(reg, q, NewRunLock(&memLeases{}, q), nil, PlanOptions{GraphRate: 5000, TokenRate: 2000})
				run, err := p.Plan(b.Context(), Request{ID: "bench", Trigger: "bench"})
				if err != nil || run.Queued != n {
					b.Fatalf("plan: %+v %v", run, err)
				}
				pc := run.Pacing
				b.Logf("%d tenants in %d messages: %d Graph requests at %.0f/s, %d token requests at %.0f/s; the last message deliverable after %s",
					run.Queued, q.n, pc.GraphRequests, pc.GraphRate, pc.TokenRequests, pc.TokenRate, q.last.Round(100*time.Millisecond))
				b.ReportMetric(q.last.Seconds(), "paced-span-s")
			}
		})
	}
}
