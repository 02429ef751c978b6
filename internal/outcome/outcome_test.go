package outcome

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestOfAndDetail(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		code       Code
		detail     string
		noDetailOf string
	}{
		{"nil", nil, OK, "", ""},
		{"classified", New(GraphConsentMissing, "no consent", nil), GraphConsentMissing, "no consent", ""},
		{"wrapped classified", fmt.Errorf("probe: %w", New(SecretNotFound, "gone", errors.New("404"))), SecretNotFound, "gone", ""},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), Timeout, "the tenant's time budget ran out", ""},
		{"unclassified text is never passed on", errors.New("GET https://v.vault.azure.net/?sig=SECRET"), UpstreamError, "an upstream service failed", "SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.code {
				t.Errorf("Of = %s, want %s", got, tt.code)
			}
			if got := Detail(tt.err); got != tt.detail {
				t.Errorf("Detail = %q, want %q", got, tt.detail)
			}
		})
	}
}

func TestCodeSides(t *testing.T) {
	for _, c := range Codes {
		if c.AppWide() && c.CustomerSide() {
			t.Errorf("%s is both app-wide and customer-side", c)
		}
	}
	if !AppCredentialInvalid.AppWide() || !KeyVaultAccessDenied.CustomerSide() || Throttled.CustomerSide() {
		t.Error("sides misassigned")
	}
}

func TestSafeCode(t *testing.T) {
	for in, want := range map[string]string{
		"Authorization_RequestDenied": "Authorization_RequestDenied",
		"Request_UnsupportedQuery":    "Request_UnsupportedQuery",
		"two words":                   "",
		"<html>":                      "",
		strings.Repeat("a", 65):       "",
	} {
		if got := SafeCode(in); got != want {
			t.Errorf("SafeCode(%q) = %q, want %q", in, got, want)
		}
	}
}
