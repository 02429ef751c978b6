package azauth

import "context"

// Len is the number of cached tenant credentials, for tests of the cache.
func (t *Tenants) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.creds.Len()
}

// Classify is classify outside any request, for table tests.
func Classify(err error) error { return classify(context.Background(), err) }
