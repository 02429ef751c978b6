// Package posture is the state of the app's own credentials: a certificate
// or client secret near its expiry is a problem of the app, reported with
// each planned run as a line an alert can fire on, and never blamed on a
// tenant.
package posture

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultWindow is how long before its expiry a credential is reported.
const DefaultWindow = 30 * 24 * time.Hour

// Credential is one credential of the app registration.
type Credential struct {
	// Kind is "certificate" or "client secret".
	Kind string `json:"kind"`
	// Name is the certificate's subject or the secret's display name.
	Name string `json:"name,omitempty"`
	// ID is the certificate's SHA-1 thumbprint or the credential's key id.
	ID        string    `json:"id,omitempty"`
	ExpiresOn time.Time `json:"expiresOn"`
	// Where is where it was read: "local" (the certificate the app signs
	// in with) or "registration" (the app registration in Entra ID).
	Where string `json:"where"`
}

// Source gives some of the app's credentials.
type Source interface {
	// Name says what the source reads, for the report.
	Name() string
	// Credentials returns them. An error says the source could not be
	// read; it is noted, and no credential is reported for it.
	Credentials(ctx context.Context) ([]Credential, error)
}

// Report is the posture at At.
type Report struct {
	At time.Time `json:"at"`
	// Expiring are the credentials that expire within the window, or have
	// expired, soonest first.
	Expiring []Credential `json:"expiring,omitempty"`
	// Checked names the sources read; Unchecked those that could not be,
	// with why.
	Checked   []string `json:"checked,omitempty"`
	Unchecked []string `json:"unchecked,omitempty"`
}

// OK reports whether nothing expires soon.
func (r Report) OK() bool { return len(r.Expiring) == 0 }

// String is the report's status line: "app posture: ok (...)" or the
// credentials that expire soon.
func (r Report) String() string {
	var b strings.Builder
	switch {
	case r.OK() && len(r.Checked) == 0:
		b.WriteString("app posture: not checked")
	case r.OK():
		b.WriteString("app posture: ok")
	default:
		b.WriteString("app posture: ")
		for i, c := range r.Expiring {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(c.describe(r.At))
		}
	}
	if len(r.Checked) > 0 {
		fmt.Fprintf(&b, " (checked: %s)", strings.Join(r.Checked, ", "))
	}
	if len(r.Unchecked) > 0 {
		fmt.Fprintf(&b, " (not checked: %s)", strings.Join(r.Unchecked, "; "))
	}
	return b.String()
}

func (c Credential) describe(now time.Time) string {
	what := c.Kind
	if c.Name != "" {
		what += " " + c.Name
	}
	if c.ID != "" {
		what += " (" + c.ID + ")"
	}
	left := c.ExpiresOn.Sub(now)
	if left <= 0 {
		return fmt.Sprintf("%s EXPIRED on %s", what, c.ExpiresOn.UTC().Format(time.DateOnly))
	}
	return fmt.Sprintf("%s expires on %s, in %d days", what, c.ExpiresOn.UTC().Format(time.DateOnly), int(left.Hours()/24))
}

// Checker reads every source and keeps what expires within Window.
type Checker struct {
	Sources []Source
	// Window defaults to DefaultWindow; Now to time.Now.
	Window time.Duration
	Now    func() time.Time
}

// Check reads each source in turn; a source that fails is noted.
func (c *Checker) Check(ctx context.Context) Report {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	window := c.Window
	if window <= 0 {
		window = DefaultWindow
	}
	r := Report{At: now()}
	for _, s := range c.Sources {
		creds, err := s.Credentials(ctx)
		if err != nil {
			r.Unchecked = append(r.Unchecked, s.Name()+": "+err.Error())
			continue
		}
		r.Checked = append(r.Checked, s.Name())
		for _, cr := range creds {
			if !cr.ExpiresOn.IsZero() && cr.ExpiresOn.Before(r.At.Add(window)) {
				r.Expiring = append(r.Expiring, cr)
			}
		}
	}
	slices.SortStableFunc(r.Expiring, func(a, b Credential) int { return a.ExpiresOn.Compare(b.ExpiresOn) })
	return r
}
