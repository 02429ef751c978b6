package onboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// postRequest is the body of POST /api/tenants: a registration, or with
// consent true a request for an admin-consent link. It repeats the fields of
// tenant.RegistrationRequest rather than embedding it, because encoding/json
// names an embedded struct in its errors ("RegistrationRequest.graph").
type postRequest struct {
	TenantID    *string                  `json:"tenantId"`
	DisplayName *string                  `json:"displayName"`
	Graph       *bool                    `json:"graph"`
	KeyVaults   []tenant.KeyVaultRequest `json:"keyVaults"`
	Consent     *bool                    `json:"consent"`
}

// registration is the request without the API's own field.
func (in postRequest) registration() tenant.RegistrationRequest {
	return tenant.RegistrationRequest{TenantID: in.TenantID, DisplayName: in.DisplayName, Graph: in.Graph, KeyVaults: in.KeyVaults}
}

// decodePost decodes a POST body strictly: exactly one JSON object with no
// unknown fields. Every error is a *tenant.ValidationError.
func decodePost(body []byte) (postRequest, error) {
	var in postRequest
	// encoding/json would turn invalid UTF-8 into U+FFFD, let the last of
	// two equal keys win and match field names in any case.
	if !utf8.Valid(body) {
		return postRequest{}, invalid("", "the body is not valid UTF-8")
	}
	if err := checkKeys(body); err != nil {
		return postRequest{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return postRequest{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return postRequest{}, invalid("", "the body must hold exactly one JSON object, found data after it")
	}
	return in, nil
}

// fieldNames are the exact names at each level of the body, by path.
var fieldNames = map[string][]string{
	"":            {"tenantId", "displayName", "graph", "keyVaults", "consent"},
	"keyVaults[]": {"vaultUrl", "secrets", "keys"},
}

// checkKeys refuses, at any depth, a key given twice (also when the two
// differ only in case) and a known field spelt in another case. A syntax
// error stops the walk: the decode that follows reports it.
func checkKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := walkKeys(dec, "")
	var ve *tenant.ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	return nil
}

func walkKeys(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			field := strings.TrimPrefix(path+"."+key, ".")
			if prev, ok := seen[strings.ToLower(key)]; ok {
				if prev == key {
					return invalid(field, "is given twice")
				}
				return invalid(field, "is given twice (as %q and %q: field names are case-sensitive)", prev, key)
			}
			seen[strings.ToLower(key)] = key
			for _, name := range fieldNames[path] {
				if name != key && strings.EqualFold(name, key) {
					return invalid(field, "unknown field (field names are case-sensitive: %q)", name)
				}
			}
			if err := walkKeys(dec, field); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkKeys(dec, path+"[]"); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

// consentRequested reports whether a valid request asks for an admin-consent
// link. Such a request names the tenant only: the consent callback records
// the tenant with Graph on and no vaults, so other fields would be silently
// dropped.
func (in postRequest) consentRequested() (bool, error) {
	if in.Consent == nil || !*in.Consent {
		return false, nil
	}
	if in.DisplayName != nil || in.Graph != nil || in.KeyVaults != nil {
		return false, errorf(http.StatusBadRequest, "invalid_request",
			"consent: a consent request takes only tenantId; register displayName, graph and keyVaults with a separate request")
	}
	return true, nil
}

func invalid(field, format string, args ...any) *tenant.ValidationError {
	return &tenant.ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var unknownField = regexp.MustCompile(`^json: unknown field "(.*)"$`)

// decodeError turns encoding/json's errors, which name Go types, into
// messages that name the JSON fields.
func decodeError(err error) *tenant.ValidationError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("", "the body is empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "the body is truncated JSON")
	case errors.As(err, &syn):
		return invalid("", "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("", "the body must be a JSON object, not %s", withArticle(typ.Value))
		}
		return invalid(typ.Field, "must be %s, not %s", jsonKind(typ.Type.Kind().String()), withArticle(typ.Value))
	}
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		return invalid(m[1], "unknown field")
	}
	return invalid("", "malformed JSON")
}

// withArticle names a JSON value kind as encoding/json reports it ("array",
// "number", "bool"...).
func withArticle(kind string) string {
	switch {
	case kind == "bool":
		return "a boolean"
	case strings.HasPrefix(kind, "number"):
		return "a number"
	case kind == "array" || kind == "object":
		return "an " + kind
	}
	return "a " + kind
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct":
		return "an object"
	}
	return "another type"
}
