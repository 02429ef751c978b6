// Package runid is the one rule for the ids of invocations and sweep runs.
// A run's id is the id of the invocation that planned it, and it travels in
// work messages, log lines and Table Storage keys, so one rule holds it
// everywhere: a run planned is a run that can be parsed and stored.
package runid

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// MaxLen bounds an id; the host's are 36-character GUIDs.
const MaxLen = 64

// Check reports whether id is a valid id: 1 to MaxLen letters, digits,
// '-', '_', '.' and ':'. That excludes what Table Storage forbids in keys
// (/ \ # ?), quotes that a filter would have to escape, and anything that
// could break a log line.
func Check(id string) error {
	if id == "" {
		return errors.New("the id is empty")
	}
	if len(id) > MaxLen {
		return fmt.Errorf("the id is %d characters long, over %d", len(id), MaxLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fmt.Errorf("the id has the character %q; want letters, digits, '-', '_', '.' and ':'", c)
		}
	}
	return nil
}

// New makes a UUID v4, so that locally made ids look like the host's and
// sort into the same log queries. It is the app's only id generator.
func New() string {
	var b [16]byte
	rand.Read(b[:]) // never fails since Go 1.24
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
