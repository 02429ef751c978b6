package outcome

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The codes are stable API: the README's and the operations guide's outcome
// tables list each one, and docs/openapi.json's Outcome enum is exactly
// Codes, in order.
func TestDocsListEveryCode(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, doc := range []string{"README.md", filepath.Join("docs", "operations.md")} {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range Codes {
			if !strings.Contains(string(b), "\n| `"+string(c)+"` |") {
				t.Errorf("%s: the outcome table has no row for %s", doc, c)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Components struct {
			Schemas struct {
				Outcome struct{ Enum []Code }
			}
		}
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if got := spec.Components.Schemas.Outcome.Enum; !slices.Equal(got, Codes) {
		t.Errorf("docs/openapi.json Outcome enum = %v, want %v", got, Codes)
	}
}
