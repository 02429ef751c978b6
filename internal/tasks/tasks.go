// Package tasks holds the built-in per-tenant tasks and the one list of the
// tasks this binary has. A task is one file here (and its test); adding it
// to All makes it available, and SWEEP_TASKS chooses which run. README's
// "Add your own per-tenant work" walks through Groups, the worked example.
package tasks

import (
	"fmt"
	"strings"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Deps are what the built-in tasks use besides the tenant the Runner
// prepares for them: the app's readers of Graph and Key Vault, shared by
// every tenant.
type Deps struct {
	Directory Directory
	Vaults    Vaults
	Keys      KeyProver
	// Advisor is the advice of the app's id and cloud, which the keys task
	// gives each failing key.
	Advisor tenant.Advisor
	// SecretExpiryWarning flags secrets and keys that expire within it.
	SecretExpiryWarning time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// All is every task this binary has; SWEEP_TASKS picks which run, and in
// which order their outcomes count. Register a new task here.
func All(d Deps) []task.Task {
	if d.Now == nil {
		d.Now = time.Now
	}
	return []task.Task{
		Access{Directory: d.Directory, Vaults: d.Vaults, ExpiryWarning: d.SecretExpiryWarning, Now: d.Now},
		Keys{Vaults: d.Keys, ExpiryWarning: d.SecretExpiryWarning, Now: d.Now, Advisor: d.Advisor},
		Groups{},
	}
}

// Select returns the tasks of all named by names, in the order of names.
// A name all lacks is an error naming it and what the binary has.
func Select(all []task.Task, names []string) ([]task.Task, error) {
	var out []task.Task
	for _, n := range names {
		t, ok := task.Find(all, n)
		if !ok {
			return nil, fmt.Errorf("no task named %q in this binary (it has %s)", n, strings.Join(task.Names(all), ", "))
		}
		out = append(out, t)
	}
	return out, nil
}
