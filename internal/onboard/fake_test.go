package onboard

import (
	"context"
	"sync"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

var _ Store = (*tenanttest.Store)(nil)

// fakeVerifier returns a canned verification and records its calls.
type fakeVerifier struct {
	mu     sync.Mutex
	result tenant.Verification
	calls  []tenant.Record
	// deadline is the time left on the context of the last call.
	deadline time.Duration
	// during runs inside Verify, for example to change the store meanwhile.
	during func(ctx context.Context, rec tenant.Record)
}

func (f *fakeVerifier) Verify(ctx context.Context, rec tenant.Record) tenant.Verification {
	f.mu.Lock()
	f.calls = append(f.calls, rec)
	if d, ok := ctx.Deadline(); ok {
		f.deadline = time.Until(d)
	}
	during, v := f.during, f.result
	f.mu.Unlock()
	if during != nil {
		during(ctx, rec)
	}
	return v
}

func (f *fakeVerifier) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type fakeForgetter struct {
	mu  sync.Mutex
	ids []string
}

func (f *fakeForgetter) Forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, id)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
