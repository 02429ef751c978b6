package logtest

import (
	"fmt"
	"sync"
	"testing"
)

func TestBufferConcurrentLines(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { fmt.Fprintf(&b, "{\"n\":%d}\n", i) })
	}
	wg.Wait()
	if lines := b.Lines(t); len(lines) != 20 {
		t.Errorf("%d lines, want 20: %s", len(lines), b.String())
	}
}
