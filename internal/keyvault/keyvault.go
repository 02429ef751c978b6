// Package keyvault reads the metadata of secrets in customer Key Vaults, and
// proves that the app can use a customer's key (keys.go). It reads a
// secret's latest version (Key Vault has no metadata-only read of the latest
// version) and drops the value at once, unread: the value never leaves the
// response, is never logged and is never stored.
package keyvault

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// maxVaultSessions bounds the TLS sessions kept for resumption, one a
// vault host (a few hundred bytes each).
const maxVaultSessions = 20000

// DefaultMaxRetryDelay caps one wait between retries when Options.Retry sets
// none. A Retry-After longer than this (or than what is left of the
// context's deadline) is not waited for: the 429 is reported as throttled.
const DefaultMaxRetryDelay = 20 * time.Second

// apiVersion is Key Vault's REST API version, azsecrets v1.5's.
const apiVersion = "2026-04-01"

// Options tune a Reader. The zero value is right for production.
type Options struct {
	// Transport sends the requests; nil means vaultHTTP.
	Transport policy.Transporter
	// Retry replaces azcore's retry options (tests shorten them).
	Retry *policy.RetryOptions
}

// Reader reads secret metadata from vaults of the configured cloud. It is
// safe for concurrent use, and keeps nothing of a tenant or a vault between
// reads: one pipeline serves every vault.
//
// A vault's token goes to it only once its 401 challenge has named the
// tenant: as azsecrets does, a first request without a token elicits the
// challenge, and a vault of another tenant is refused before any token is
// requested. What the challenge said is kept by the tenant's credential
// (knownVaults) and shared by the fleet through the tenant's row, so the
// challenge is asked once per vault, not once per process and sweep: a
// warm read is one request.
//
// The one thing of a tenant it keeps is the public part of each key it
// proved (keys.go), so that a warm key costs one round trip.
type Reader struct {
	cl    cloud.Cloud
	opts  Options
	retry policy.RetryOptions
	pl    runtime.Pipeline
	keys  knownKeys
}

// knownVaults is a tenant credential that knows which vault hosts are the
// tenant's own. *azauth.Session is one, and a task's gated view of it.
type knownVaults interface {
	VaultKnown(host string) bool
	VaultIs(host string, own bool)
}

// New returns a Reader for the vaults of cl.
func New(cl cloud.Cloud, opts Options) *Reader {
	var retry policy.RetryOptions
	if opts.Retry != nil {
		retry = *opts.Retry
	}
	if retry.MaxRetryDelay == 0 {
		retry.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if retry.ShouldRetry == nil {
		retry.ShouldRetry = outcome.RetryWithin(retry.RetryDelay, retry.MaxRetryDelay)
	}
	r := &Reader{cl: cl, opts: opts, retry: retry}
	r.pl = runtime.NewPipeline("keyvault", "v1", runtime.PipelineOptions{}, r.clientOptions())
	return r
}

// clientOptions are the azcore options of the Reader's pipeline, and of an
// azsecrets client for what the pipeline does not do.
func (r *Reader) clientOptions() *azcore.ClientOptions {
	co := &azcore.ClientOptions{Retry: r.retry, PerRetryPolicies: []policy.Policy{hostPolicy{}, sentPolicy{}}, Transport: vaultHTTP}
	if r.opts.Transport != nil {
		co.Transport = r.opts.Transport
	}
	return co
}

type hostKey struct{}

// Secret reads the metadata of the latest version of secret name in the vault
// at vaultURL, authenticating with cred, a credential of tenantID. A vault URL
// that is not https on a vault host of the configured cloud is refused before
// any request, with a plain error.
func (r *Reader) Secret(ctx context.Context, tenantID, vaultURL, name string, cred azcore.TokenCredential) (tenant.SecretMeta, error) {
	id, host, err := r.target(tenantID, vaultURL, "secret", name, cred)
	if err != nil {
		return tenant.SecretMeta{}, err
	}
	ctx = r.requestContext(ctx)
	v := r.vault(id, host, cred)
	resp, err := r.call(ctx, v, http.MethodGet, "https://"+host+"/secrets/"+name+"/?api-version="+apiVersion, nil)
	if err != nil {
		return tenant.SecretMeta{}, classify(ctx, name, err)
	}
	return r.answer(ctx, resp, host, name, v.bound)
}

// vault is what the requests of one tenant to one of its vaults share.
type vault struct {
	host  string
	bound *tenantCredential
	known knownVaults // nil: the credential keeps no vaults
}

func (r *Reader) vault(tenantID, host string, cred azcore.TokenCredential) vault {
	known, _ := cred.(knownVaults)
	return vault{host: host, bound: &tenantCredential{tenantID: tenantID, scope: r.cl.KeyVaultScope, cred: cred}, known: known}
}

// learn asks the vault's challenge which tenant and resource it wants,
// unless the tenant's credential knows the vault already, and tells the
// credential what it said. The request is method url without a body or a
// token. A vault that answers it without asking for a token is answered
// with resp, for the caller to read as its request's answer.
func (r *Reader) learn(ctx context.Context, v vault, method, url string) (resp *http.Response, err error) {
	if v.known != nil && v.known.VaultKnown(v.host) {
		return nil, nil
	}
	resp, err = r.send(ctx, v.host, method, url, "", nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return resp, nil // it did not ask for one
	}
	discard(resp)
	if err := v.bound.check(parseChallenge(resp.Header.Get("WWW-Authenticate"))); err != nil {
		if v.known != nil && errors.Is(err, errForeignTenant) {
			v.known.VaultIs(v.host, false)
		}
		return nil, err
	}
	if v.known != nil {
		v.known.VaultIs(v.host, true)
	}
	return nil, nil
}

// call sends one request of the tenant to its vault, as azsecrets and
// azkeys would: the vault's challenge first when the vault is not known,
// then with the tenant's Key Vault token, and once more with a token that
// carries the claims of a claims challenge (continuous access evaluation).
// Its response may be any answer but a claims challenge; its error is the
// credential's, a challenge's refusal or a request the vault did not
// answer, for the caller to classify.
func (r *Reader) call(ctx context.Context, v vault, method, url string, body []byte) (*http.Response, error) {
	if resp, err := r.learn(ctx, v, method, url); resp != nil || err != nil {
		return resp, err
	}
	tro := policy.TokenRequestOptions{Scopes: []string{r.cl.KeyVaultScope}, TenantID: v.bound.tenantID, EnableCAE: true}
	for try := 0; ; try++ {
		tk, err := v.bound.GetToken(ctx, tro)
		if err != nil {
			return nil, err
		}
		resp, err := r.send(ctx, v.host, method, url, tk.Token, body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized || try > 0 {
			return resp, nil
		}
		ch := parseChallenge(resp.Header.Get("WWW-Authenticate"))
		if err := v.bound.check(ch); errors.Is(err, errForeignTenant) {
			// The vault moved to another tenant since it was known.
			discard(resp)
			if v.known != nil {
				v.known.VaultIs(v.host, false)
			}
			return nil, err
		}
		if ch.claims == "" {
			return resp, nil // the token was refused
		}
		discard(resp)
		tro.Claims = ch.claims
	}
}

// send sends one request to url, on the vault at host, with the token (none:
// the challenge, which carries no body either) and a JSON body.
func (r *Reader) send(ctx context.Context, host, method, url, token string, body []byte) (*http.Response, error) {
	req, err := runtime.NewRequest(context.WithValue(ctx, hostKey{}, host), method, url)
	if err != nil {
		return nil, err
	}
	req.Raw().Header.Set("Accept", "application/json")
	if token == "" {
		return r.pl.Do(req)
	}
	req.Raw().Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)), "application/json"); err != nil {
			return nil, err
		}
	}
	return r.pl.Do(req)
}

// answer reads a secret's answer: its metadata (the value is dropped
// unread), a disabled secret's from its versions, or the error.
func (r *Reader) answer(ctx context.Context, resp *http.Response, host, name string, cred *tenantCredential) (tenant.SecretMeta, error) {
	if resp.StatusCode != http.StatusOK {
		err := runtime.NewResponseError(resp)
		if isDisabled(err) {
			return r.disabledMeta(ctx, host, name, cred)
		}
		return tenant.SecretMeta{}, classify(ctx, name, err)
	}
	defer resp.Body.Close()
	var body struct {
		ID         string `json:"id"`
		Attributes *struct {
			Enabled *bool  `json:"enabled"`
			Expires *int64 `json:"exp"`
		} `json:"attributes"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return tenant.SecretMeta{}, outcome.New(outcome.UpstreamError, "Key Vault's answer did not decode", err)
	}
	var meta tenant.SecretMeta
	if _, version, ok := strings.Cut(body.ID, "/secrets/"+name+"/"); ok && !strings.Contains(version, "/") {
		meta.Version = version
	}
	if a := body.Attributes; a != nil {
		meta.Enabled = a.Enabled
		if a.Expires != nil {
			exp := time.Unix(*a.Expires, 0)
			meta.ExpiresOn = &exp
		}
	}
	return meta, nil
}

func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// boundRetry caps each retry wait at what is left of the context's deadline:
// azcore does not wait for a Retry-After above MaxRetryDelay but returns the
// 429 at once, which is then reported as throttled instead of a timeout.
func (r *Reader) boundRetry(ctx context.Context) context.Context {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	o := r.retry
	left := time.Until(deadline)
	if left <= 0 {
		return ctx
	}
	if o.MaxRetryDelay < 0 || left < o.MaxRetryDelay {
		o.MaxRetryDelay = left
	}
	return policy.WithRetryOptions(ctx, o)
}

// disabledMeta reads the metadata of a disabled secret, whose value Key Vault
// refuses to read, from the list of its versions: the current version is the
// one created last. When two versions tie on their creation time the current
// one is unknown, and only Enabled=false is returned. It is rare enough that
// an azsecrets client, which asks the vault's challenge again, is made for
// it.
func (r *Reader) disabledMeta(ctx context.Context, host, name string, cred *tenantCredential) (tenant.SecretMeta, error) {
	ctx = context.WithValue(ctx, hostKey{}, host)
	sc, err := azsecrets.NewClient("https://"+host, cred, &azsecrets.ClientOptions{ClientOptions: *r.clientOptions()})
	if err != nil {
		return tenant.SecretMeta{}, fmt.Errorf("keyvault: new client: %w", err)
	}
	disabled := false
	meta := tenant.SecretMeta{Enabled: &disabled}
	var latest *azsecrets.SecretProperties
	tie := false
	pager := sc.NewListSecretPropertiesVersionsPager(name, nil)
	for pages := 0; pager.More(); pages++ {
		if pages == maxVersionPages {
			return meta, nil
		}
		page, err := pager.NextPage(ctx)
		if err != nil {
			return tenant.SecretMeta{}, classify(ctx, name, err)
		}
		for _, p := range page.Value {
			if p == nil || p.Attributes == nil || p.Attributes.Created == nil || p.ID == nil {
				continue
			}
			switch {
			case latest == nil || p.Attributes.Created.After(*latest.Attributes.Created):
				latest, tie = p, false
			case p.Attributes.Created.Equal(*latest.Attributes.Created):
				tie = true
			}
		}
	}
	if latest != nil && !tie {
		meta.Version = latest.ID.Version()
		meta.ExpiresOn = latest.Attributes.Expires
	}
	return meta, nil
}

// maxVersionPages bounds the listing of a disabled secret's versions (25 a
// page).
const maxVersionPages = 40

// vaultHTTP is the transport of every Key Vault client. It departs from
// azcore's default on purpose, and keeps what that default exists for: the
// proxy comes from HTTPS_PROXY/NO_PROXY and the trusted roots from the system
// pool (SSL_CERT_FILE, SSL_CERT_DIR). Every customer vault is a distinct
// host. azcore's default keeps each connection (HTTP/2, 90 s idle timeout)
// with its TLS state and buffers: measured at 2,000 tenants over two sweeps,
// 212 MB RSS. One-shot connections (133 MB) made every read, and a cold
// vault's challenge, pay a TLS handshake, the largest CPU cost of a sweep.
// This transport keeps a bounded idle pool instead: a vault's challenge, its
// read and its other secrets' reads share a connection while the tenant is
// probed, and at most maxIdleVaultConns idle connections (a few hundred KB)
// are kept, closed after vaultIdleTimeout. The next sweep, minutes later,
// dials each vault again; a TLS session cache per vault host lets that
// handshake resume the last session instead of verifying the vault's
// certificate chain again (a few hundred bytes a vault).
var vaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy: http.ProxyFromEnvironment,
	DialContext: (&net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
	}).DialContext,
	// A proxy's refusal to tunnel to the vault is final, not a blip.
	OnProxyConnectResponse: outcome.CheckProxyConnect,
	TLSClientConfig: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(maxVaultSessions),
	},
	TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1
	TLSHandshakeTimeout: 10 * time.Second,
	MaxIdleConns:        maxIdleVaultConns,
	MaxIdleConnsPerHost: 4,
	IdleConnTimeout:     vaultIdleTimeout,
}}

const (
	maxIdleVaultConns = 128
	vaultIdleTimeout  = 30 * time.Second
)

// sentPolicy counts each try for outcome.RetryWithin and the outcome's
// detail ("answered HTTP 500 three times").
type sentPolicy struct{}

func (sentPolicy) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	raw := req.Raw()
	key := raw.Method + " " + raw.URL.Path
	if raw.Header.Get("Authorization") == "" {
		key += " (challenge)" // eliciting the challenge is no try of the read
	}
	outcome.Sent(raw.Context(), key, status)
	return resp, err
}

// hostPolicy refuses to send a request anywhere but the vault's host its
// context names: a token is attached to whatever URL a request has, and a
// next-page link comes from the response.
type hostPolicy struct{}

func (hostPolicy) Do(req *policy.Request) (*http.Response, error) {
	want, _ := req.Raw().Context().Value(hostKey{}).(string)
	u := req.Raw().URL
	if want == "" || u.Scheme != "https" || !strings.EqualFold(u.Hostname(), want) || (u.Port() != "" && u.Port() != "443") {
		return nil, errForeignHost
	}
	return req.Next()
}
