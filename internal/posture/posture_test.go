package posture

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type fixed struct {
	name  string
	creds []Credential
	err   error
}

func (f fixed) Name() string                                      { return f.name }
func (f fixed) Credentials(context.Context) ([]Credential, error) { return f.creds, f.err }

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	days := func(n int) time.Time { return now.Add(time.Duration(n) * 24 * time.Hour) }
	local := fixed{name: "the app's certificate file", creds: []Credential{{Kind: "certificate", Name: "CN=app", ID: "AB12", ExpiresOn: days(12), Where: "local"}}}
	reg := fixed{name: "the app registration", creds: []Credential{
		{Kind: "client secret", Name: "old", ID: "k1", ExpiresOn: days(-2), Where: "registration"},
		{Kind: "client secret", Name: "new", ID: "k2", ExpiresOn: days(300), Where: "registration"},
		{Kind: "certificate", Name: "CN=app", ID: "k3", ExpiresOn: days(30).Add(time.Hour), Where: "registration"},
	}}
	denied := fixed{name: "the app registration", err: errors.New("the app may not read its own registration")}

	r := (&Checker{Sources: []Source{local, reg}, Now: func() time.Time { return now }}).Check(context.Background())
	if r.OK() || len(r.Expiring) != 2 || r.Expiring[0].Name != "old" || r.Expiring[1].ID != "AB12" {
		t.Fatalf("report = %+v", r)
	}
	line := r.String()
	for _, want := range []string{"client secret old (k1) EXPIRED on 2026-11-29", "certificate CN=app (AB12) expires on 2026-12-13, in 12 days",
		"checked: the app's certificate file, the app registration"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "new") {
		t.Errorf("line %q names a credential far from its expiry", line)
	}

	r = (&Checker{Sources: []Source{denied}, Now: func() time.Time { return now }}).Check(context.Background())
	if got := r.String(); got != "app posture: not checked (not checked: the app registration: the app may not read its own registration)" {
		t.Errorf("line = %q", got)
	}
	r = (&Checker{Sources: []Source{fixed{name: "the app registration"}}, Now: func() time.Time { return now }}).Check(context.Background())
	if got := r.String(); !r.OK() || got != "app posture: ok (checked: the app registration)" {
		t.Errorf("line = %q", got)
	}
}
