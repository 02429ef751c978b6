// Package local stands in for the Functions host in development mode
// (`handler local`, `handler sweep`): it reads local.settings.json as
// `func start` does, resolves a timer function's schedule from its
// function.json, and fires the timer on that NCRONTAB schedule. Nothing here
// runs under the real host.
package local

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// ReadSettings reads the Values of a local.settings.json file and returns
// getenv with them filling in what the environment lacks, as `func start`
// does: a variable that is set and not empty wins over the file. A missing
// file is an error that wraps os.ErrNotExist.
func ReadSettings(path string, getenv func(string) string) (func(string) string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read settings file: %w", err)
	}
	var f struct {
		Values map[string]json.RawMessage `json:"Values"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("settings file %s: %w", path, err)
	}
	values := make(map[string]string, len(f.Values))
	for k, raw := range f.Values {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			// func start accepts numbers and booleans too.
			s = strings.Trim(string(raw), `"`)
		}
		values[k] = s
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return values[k]
	}, nil
}
