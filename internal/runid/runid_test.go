package runid

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"7f3c2a4e-1b2c-4d5e-8f90-1234567890ab", true},
		{"cli-run_1.2:3", true},
		{strings.Repeat("a", MaxLen), true},
		{"", false},
		{strings.Repeat("a", MaxLen+1), false},
		{"a/b", false},
		{`a\b`, false},
		{"a#b", false},
		{"a?b", false},
		{"a'b", false},
		{`a"b`, false},
		{"a b", false},
		{"a\nb", false},
		{"é", false},
	} {
		if err := Check(tt.id); (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
	}
	for range 100 {
		if id := New(); Check(id) != nil || len(id) != 36 {
			t.Fatalf("New() = %q is not a valid id", id)
		}
	}
}
