package azauth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// secretReader returns a function reading the app secret at uri with cred.
func secretReader(uri tenant.SecretURI, cred azcore.TokenCredential, co azcore.ClientOptions) (func(context.Context) (string, error), error) {
	name, version := uri.Name, uri.Version
	client, err := azsecrets.NewClient(uri.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: co})
	if err != nil {
		return nil, fmt.Errorf("key vault client: %w", err)
	}
	return func(ctx context.Context) (string, error) {
		resp, err := client.GetSecret(ctx, name, version, nil)
		if err != nil {
			return "", err
		}
		if resp.Value == nil || *resp.Value == "" {
			return "", fmt.Errorf("secret %s is empty", name)
		}
		return *resp.Value, nil
	}, nil
}

// secretSource is the app secret read from Key Vault. A sign-in that the
// secret fails re-reads it, once for all goroutines and at most once an
// interval, so a rotation in Key Vault is picked up without a restart.
type secretSource struct {
	read     func(context.Context) (string, error)
	interval time.Duration

	mu       sync.Mutex
	value    string
	gen      uint64 // incremented when value changes
	lastRead time.Time
	inflight chan struct{} // closed when the running re-read ends
}

func (s *secretSource) current() (string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value, s.gen
}

// rereadTimeout bounds a re-read, which runs on behalf of every waiting
// sign-in and so does not end with the first caller's context.
const rereadTimeout = 30 * time.Second

// refresh re-reads the secret because a sign-in with generation seen failed.
// It reports whether a newer secret than seen is now current.
func (s *secretSource) refresh(ctx context.Context, seen uint64) (bool, error) {
	s.mu.Lock()
	for s.inflight != nil {
		ch := s.inflight
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		s.mu.Lock()
	}
	if s.gen != seen {
		s.mu.Unlock()
		return true, nil
	}
	if !s.lastRead.IsZero() && time.Since(s.lastRead) < s.interval {
		s.mu.Unlock()
		return false, nil
	}
	ch := make(chan struct{})
	s.inflight = ch
	s.lastRead = time.Now()
	s.mu.Unlock()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rereadTimeout)
	v, err := s.read(rctx)
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = nil
	close(ch)
	if err != nil {
		return false, err
	}
	if v != s.value {
		s.value = v
		s.gen++
	}
	return s.gen != seen, nil
}
