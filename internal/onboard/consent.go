package onboard

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// maxShownError bounds the consent screen's error text echoed on our page.
const maxShownError = 500

func (a *API) consentConfigured() bool {
	return a.cfg.RedirectURI != "" && len(a.cfg.StateKey) >= 32 && a.cfg.AppID != ""
}

// consentLink answers the admin-consent URL of seed step 4 for one tenant: the
// tenant's own authority (never /common or /organizations), the app's Graph
// application permissions (.default), and a signed state the callback checks.
func (a *API) consentLink(w http.ResponseWriter, tenantID string, check *TenantCheck) error {
	state, err := mintState(a.cfg.StateKey, tenantID, a.cfg.Now())
	if err != nil {
		return err
	}
	q := url.Values{
		"client_id":    {a.cfg.AppID},
		"scope":        {a.cfg.Cloud.GraphScope()},
		"redirect_uri": {a.cfg.RedirectURI},
		"state":        {state},
	}
	link := a.cfg.Cloud.AuthorityHost + tenantID + "/v2.0/adminconsent?" + q.Encode()
	funchost.WriteJSON(w, http.StatusOK, struct {
		ConsentURL  string       `json:"consentUrl"`
		TenantCheck *TenantCheck `json:"tenantCheck,omitempty"`
	}{link, check})
	return nil
}

func errConsentNotConfigured() error {
	return errorf(http.StatusNotImplemented, "consent_not_configured",
		"admin consent is not configured: set ONBOARD_REDIRECT_URI and ONBOARD_STATE_KEY")
}

// consentCallback is where Entra ID sends the admin's browser after the
// consent screen. Only the signed state says which tenant to record: the
// tenant parameter must match it, and is never trusted alone.
func (a *API) consentCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	log := zerolog.Ctx(ctx)
	q := r.URL.Query()

	if q.Has("error") {
		code, desc := clip(q.Get("error")), clip(q.Get("error_description"))
		log.Info().Str("error", code).Msg("admin consent declined or failed")
		paras := []string{"Microsoft Entra ID reported that admin consent was not granted, so nothing was recorded."}
		if code != "" {
			paras = append(paras, "Error: "+code)
		}
		renderPage(w, http.StatusBadRequest, page{Title: "Consent was not granted", Paragraphs: paras, Detail: desc})
		return
	}
	if !a.consentConfigured() {
		renderPage(w, http.StatusNotImplemented, page{Title: "Admin consent is not configured",
			Paragraphs: []string{"This app does not accept admin-consent redirects. Ask the app's operator for an onboarding link."}})
		return
	}

	now := a.cfg.Now()
	tenantID, err := tenant.ParseTenantID(q.Get("tenant"))
	if err == nil {
		err = verifyState(a.cfg.StateKey, q.Get("state"), tenantID, now)
	}
	if err == nil && !strings.EqualFold(q.Get("admin_consent"), "true") {
		err = errAdminConsentMissing
	}
	if err != nil {
		log.Warn().Err(err).Msg("admin consent callback refused")
		renderPage(w, http.StatusBadRequest, page{Title: "This consent link is invalid or expired",
			Paragraphs: []string{"This consent link is invalid or expired. Nothing was recorded. Ask for a new onboarding link and use it within an hour."}})
		return
	}

	// Entra ID is asked about the tenant first, as a POST does: a tenant it
	// does not know, or of another cloud, is not recorded.
	checked := tenant.Registration{TenantID: tenantID}
	check, err := a.checkTenant(ctx, &checked)
	if he, ok := errors.AsType[*httpError](err); ok {
		log.Info().Str("tenantId", tenantID).Str("code", he.code).Msg("admin consent for a tenant that cannot be onboarded")
		renderPage(w, he.status, page{Title: "This tenant cannot be onboarded here",
			Paragraphs: []string{"Consent was granted, but Microsoft Entra ID says this tenant cannot be reached by this app, so nothing was recorded.", he.message + "."}})
		return
	}
	if err != nil {
		log.Error().Err(err).Str("tenantId", tenantID).Msg("check the tenant before recording its admin consent")
		renderPage(w, http.StatusInternalServerError, page{Title: "Something went wrong",
			Paragraphs: []string{"Consent was granted, but the tenant could not be recorded. Please open the consent link again in a few minutes."}})
		return
	}

	// Consent enables Graph; a tenant already registered keeps its settings
	// and vaults, and is re-activated like any re-onboarding.
	rec, _, err := a.cfg.Store.Mutate(ctx, tenantID, func(rec *tenant.Record, exists bool) error {
		reg := checked
		if exists {
			graph := rec.Graph
			reg.DisplayName, reg.Graph, reg.KeyVaults = rec.DisplayName, &graph, rec.KeyVaults
		}
		reg.Apply(rec, exists, now)
		return nil
	})
	if err != nil {
		log.Error().Err(err).Str("tenantId", tenantID).Msg("record admin consent")
		renderPage(w, http.StatusInternalServerError, page{Title: "Something went wrong",
			Paragraphs: []string{"Consent was granted, but the tenant could not be recorded. Please open the consent link again in a few minutes."}})
		return
	}
	rec = a.verify(ctx, rec)
	v := rec.Verification
	log.Info().Str("tenantId", tenantID).Str("outcome", string(v.Outcome)).Msg("tenant registered by admin consent")

	renderPage(w, http.StatusOK, resultPage(rec, check))
}

// resultPage tells the admin who consented what was recorded and what, if
// anything, is left: a step still owed (with its fix), a problem of the app
// itself, or nothing but time.
func resultPage(rec tenant.Record, check *TenantCheck) page {
	id, v := rec.TenantID, rec.Verification
	recorded := "Recorded: tenant " + id + recordedChecks(rec) + "."
	var p page
	switch {
	case v.Outcome == outcome.OK:
		p = page{Title: "Onboarding succeeded",
			Paragraphs: []string{"Tenant " + id + " is onboarded: the app signed in to it and every check passed.", recorded}}
	case v.Outcome.Transient():
		// Nothing is missing as far as the app can tell: say what failed
		// and that it is tried again, and ask for nothing.
		p = page{Title: "Onboarding is recorded; the check will run again", Paragraphs: []string{recorded,
			"Tenant " + id + " is recorded, but the app could not finish checking it just now (" + string(v.Outcome) + "): " + v.Message + ".",
			"This is temporary and asks nothing of you: the app checks the tenant again on its next sweep. Open the consent link again later to see the result now."}}
	case v.Outcome.AppWide():
		p = page{Title: "Onboarding is recorded; the app has a problem of its own", Paragraphs: []string{recorded,
			"Tenant " + id + " is recorded, but the app could not sign in because of a problem with the app itself, not with your tenant: " + v.Message + ".",
			"Nothing is asked of you: the app's developer fixes it, and the tenant is checked again on the app's next sweep after that."}}
	default:
		p = page{Title: "One step is still missing", Paragraphs: []string{recorded}}
		if v.Step != "" {
			p.Paragraphs = append(p.Paragraphs, "Tenant "+id+" is recorded, but "+stepText(v.Step)+".")
		} else {
			p.Paragraphs = append(p.Paragraphs, "Tenant "+id+" is recorded, but its verification did not pass ("+string(v.Outcome)+").")
		}
		if v.Message != "" {
			p.Paragraphs = append(p.Paragraphs, v.Message)
		}
		if v.Remediation != "" {
			p.Paragraphs = append(p.Paragraphs, "To finish it:")
			p.Detail = v.Remediation
		}
	}
	if note := checkedText(check); note != "" {
		p.Paragraphs = append(p.Paragraphs, note)
	}
	return p
}

// recordedChecks says in words what the app will check in the tenant.
func recordedChecks(rec tenant.Record) string {
	secrets, keys := 0, 0
	for _, kv := range rec.KeyVaults {
		secrets += len(kv.Secrets)
		keys += len(kv.Keys)
	}
	var checks []string
	if rec.Graph {
		checks = append(checks, "Microsoft Graph")
	}
	switch {
	case keys == 0 && secrets > 0:
		checks = append(checks, fmt.Sprintf("%d Key Vault secret(s) in %d vault(s)", secrets, len(rec.KeyVaults)))
	case secrets == 0 && keys > 0:
		checks = append(checks, fmt.Sprintf("%d Key Vault key(s) in %d vault(s)", keys, len(rec.KeyVaults)))
	case keys > 0:
		checks = append(checks, fmt.Sprintf("%d Key Vault secret(s) and %d key(s) in %d vault(s)", secrets, keys, len(rec.KeyVaults)))
	}
	if len(checks) == 0 {
		return ""
	}
	return ", to be checked for " + strings.Join(checks, " and ")
}

// stepText says which of the seed's onboarding steps is still owed, for the
// admin reading the page.
func stepText(step string) string {
	switch step {
	case "3":
		return "step 3 of the setup is still missing (adding the app to the tenant, and keeping it enabled)"
	case "4":
		return "step 4 of the setup is still missing (admin consent to the app's Microsoft Graph permissions)"
	case "5":
		return "step 5 of the setup is still missing (a role for the app on the Key Vault)"
	case tenant.StepPolicy:
		return "a policy blocks the app's sign-in"
	case "onboarding":
		return "the tenant itself cannot be signed in to"
	}
	return "step " + step + " of the setup is still missing"
}

var errAdminConsentMissing = errors.New("redirect carries no admin_consent=True")

// clip bounds text from the query string that is shown on the page.
func clip(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= maxShownError {
		return s
	}
	cut := maxShownError
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

type page struct {
	Title      string
	Paragraphs []string
	// Detail is preformatted text, such as remediation commands.
	Detail string
}

// pageTemplate escapes every value: the texts include the consent screen's
// error description, which anyone can put in a link to this page.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:42em;margin:3em auto;padding:0 1em;line-height:1.5}pre{white-space:pre-wrap;background:#f4f4f4;padding:.75em}</style>
</head><body>
<h1>{{.Title}}</h1>
{{range .Paragraphs}}<p>{{.}}</p>
{{end}}{{with .Detail}}<pre>{{.}}</pre>
{{end}}</body></html>
`))

func renderPage(w http.ResponseWriter, status int, p page) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
