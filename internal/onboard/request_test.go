package onboard

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

func secretsBody(secrets string) string {
	return fmt.Sprintf(`{"tenantId":%q,"keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":%s}]}`, tenantA, secrets)
}

// parse is what POST does with a body before it looks at consent.
func parse(body string) (postRequest, tenant.Registration, error) {
	in, err := decodePost([]byte(body))
	if err != nil {
		return in, tenant.Registration{}, err
	}
	reg, err := in.registration().Validate(cloud.AzurePublic)
	return in, reg, err
}

func TestDecodePostValid(t *testing.T) {
	graph := true
	tests := []struct {
		name    string
		body    string
		consent bool
	}{
		{"empty display name and consent are accepted", `{"tenantId":"` + tenantA + `","displayName":"","consent":true}`, true},
		{"consent false", `{"tenantId":"` + tenantA + `","consent":false}`, false},
		{"trailing whitespace", `{"tenantId":"` + tenantA + `"}` + "\n\t ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, reg, err := parse(tt.body)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if want := (tenant.Registration{TenantID: tenantA, Graph: &graph}); !reflect.DeepEqual(reg, want) {
				t.Errorf("got  %+v\nwant %+v", reg, want)
			}
			if got := in.Consent != nil && *in.Consent; got != tt.consent {
				t.Errorf("consent = %v, want %v", got, tt.consent)
			}
		})
	}
}

func TestDecodePostInvalid(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantField string
		wantMsg   string // substring of the message
	}{
		{"empty body", ``, "", "empty"},
		{"whitespace body", "  \n", "", "empty"},
		{"not JSON", `tenantId=x`, "", "malformed JSON"},
		{"truncated", `{"tenantId":"` + tenantA + `"`, "", "truncated"},
		{"array", `[]`, "", "JSON object"},
		{"string", `"x"`, "", "JSON object"},
		{"trailing object", `{"tenantId":"` + tenantA + `"}{}`, "", "exactly one"},
		{"trailing garbage", `{"tenantId":"` + tenantA + `"}x`, "", "exactly one"},
		{"unknown field", `{"tenantId":"` + tenantA + `","plan":"gold"}`, "plan", "unknown field"},
		{"unknown nested field", `{"tenantId":"` + tenantA + `","keyVaults":[{"vaultUrl":"https://a.vault.azure.net/","secrets":["s"],"x":1}]}`, "x", "unknown field"},
		{"tenant id not a string", `{"tenantId":42}`, "tenantId", "must be a string"},
		{"graph not a boolean", `{"tenantId":"` + tenantA + `","graph":"yes"}`, "graph", "boolean"},
		{"consent not a boolean", `{"tenantId":"` + tenantA + `","consent":1}`, "consent", "boolean"},
		{"keyVaults not an array", `{"tenantId":"` + tenantA + `","keyVaults":{}}`, "keyVaults", "array"},
		{"secret not a string", secretsBody(`[1]`), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parse(tt.body)
			var ve *tenant.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v (%T), want a *tenant.ValidationError", err, err)
			}
			if tt.wantField != "" && ve.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (%v)", ve.Field, tt.wantField, ve)
			}
			if !strings.Contains(ve.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", ve.Message, tt.wantMsg)
			}
			if strings.Contains(ve.Message, "Go value") || strings.Contains(ve.Message, "tenant.") || strings.Contains(ve.Message, "onboard.") {
				t.Errorf("Message %q leaks Go type names", ve.Message)
			}
		})
	}
}
