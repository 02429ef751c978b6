// Package keyvault reads the metadata of secrets in customer Key Vaults, and
// proves that the app can use a customer's key (keys.go). It reads a
// secret's latest version (Key Vault has no metadata-only read of the latest
// version) and drops the value at once: the value never leaves Secret, is
// never logged and is never stored. Every request of a (tenant, vault) goes
// through one cached client per SDK, with the tenant's credential, to that
// vault's host only.
package keyvault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/lru"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// DefaultMaxClients bounds the per-tenant client cache when
// Options.MaxClients is zero. It matches the credential cache's bound: a
// client evicted before its tenant's next sweep is rebuilt, and for Key Vault
// that costs another 401 challenge on every sweep (measured at 10,000 tenants
// with a smaller bound: 4 calls a tenant instead of 3).
const DefaultMaxClients = 100000

// DefaultMaxRetryDelay caps one wait between retries when Options.Retry sets
// none. A Retry-After longer than this (or than what is left of the
// context's deadline) is not waited for: the 429 is reported as throttled.
const DefaultMaxRetryDelay = 20 * time.Second

// Options tune a Reader. The zero value is right for production.
type Options struct {
	// Transport sends the requests; nil means azcore's default.
	Transport policy.Transporter
	// Retry replaces azcore's retry options (tests shorten them).
	Retry *policy.RetryOptions
	// MaxClients bounds the number of (tenant, vault) clients cached.
	MaxClients int
}

// Reader reads secret metadata from vaults of the configured cloud. It is
// safe for concurrent use.
type Reader struct {
	cl    cloud.Cloud
	opts  Options
	retry policy.RetryOptions

	mu      sync.Mutex
	clients *lru.Cache[clientKey, *client]
}

type clientKey struct{ tenantID, vaultHost string }

// client is what the Reader keeps of one (tenant, vault): the credential
// bound to the tenant, and the SDK clients, made when first needed (a vault
// registered for keys alone never gets an azsecrets client), which keep the
// vault's challenge; and the public parts of its keys (keys.go).
type client struct {
	bound *tenantCredential
	url   string
	opts  azcore.ClientOptions

	mu   sync.Mutex
	sc   *azsecrets.Client
	kc   *azkeys.Client
	keys map[string]knownKey
}

// options are the SDK client options of the vault, for one SDK client.
func (c *client) options() azcore.ClientOptions {
	o := c.opts
	o.PerRetryPolicies = slices.Clone(o.PerRetryPolicies)
	return o
}

func (c *client) secrets() (*azsecrets.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sc == nil {
		sc, err := azsecrets.NewClient(c.url, c.bound, &azsecrets.ClientOptions{ClientOptions: c.options()})
		if err != nil {
			return nil, fmt.Errorf("keyvault: new client: %w", err)
		}
		c.sc = sc
	}
	return c.sc, nil
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
	size := opts.MaxClients
	if size <= 0 {
		size = DefaultMaxClients
	}
	return &Reader{cl: cl, opts: opts, retry: retry, clients: lru.New[clientKey, *client](size)}
}

// Secret reads the metadata of the latest version of secret name in the vault
// at vaultURL, authenticating with cred, a credential of tenantID. A vault URL
// that is not https on a vault host of the configured cloud is refused before
// any request, with a plain error.
func (r *Reader) Secret(ctx context.Context, tenantID, vaultURL, name string, cred azcore.TokenCredential) (tenant.SecretMeta, error) {
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return tenant.SecretMeta{}, fmt.Errorf("keyvault: %w", err)
	}
	host, err := tenant.ParseVaultURL(vaultURL, r.cl)
	if err != nil {
		return tenant.SecretMeta{}, fmt.Errorf("keyvault: vault URL: %w", err)
	}
	if !tenant.ValidSecretName(name) {
		return tenant.SecretMeta{}, fmt.Errorf("keyvault: invalid secret name %q", name)
	}
	c, err := r.client(id, host, cred)
	if err != nil {
		return tenant.SecretMeta{}, err
	}
	sc, err := c.secrets()
	if err != nil {
		return tenant.SecretMeta{}, err
	}
	ctx = r.boundRetry(outcome.WithAttempts(ctx))
	resp, err := sc.GetSecret(ctx, name, "", nil)
	resp.Value = nil // the value is not ours to keep
	if isDisabled(err) {
		return disabledMeta(ctx, sc, name)
	}
	if err != nil {
		return tenant.SecretMeta{}, classify(ctx, name, err)
	}
	var meta tenant.SecretMeta
	if resp.ID != nil {
		meta.Version = resp.ID.Version()
	}
	if a := resp.Attributes; a != nil {
		meta.Enabled = a.Enabled
		meta.ExpiresOn = a.Expires
	}
	return meta, nil
}

// Forget drops the tenant's clients.
func (r *Reader) Forget(tenantID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return // never cached
	}
	r.clients.RemoveIf(func(k clientKey) bool { return k.tenantID == id })
}

// client returns the cached client of (tenant, vault), so that Key Vault's
// 401 challenge and the token fetch happen once per client, not per read.
func (r *Reader) client(tenantID, host string, cred azcore.TokenCredential) (*client, error) {
	if cred == nil {
		return nil, errors.New("keyvault: nil credential")
	}
	k := clientKey{tenantID: tenantID, vaultHost: host}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients.Get(k); ok {
		// Every credential handed in for the tenant is that tenant's (a
		// task's gated view of it, or a new one after the cache dropped
		// the old): the client keeps its vault's challenge and uses the
		// latest.
		c.bound.use(cred)
		return c, nil
	}
	opts := azcore.ClientOptions{
		Retry:            r.retry,
		PerRetryPolicies: []policy.Policy{hostPolicy(host), sentPolicy{}},
		Transport:        r.opts.Transport,
	}
	if opts.Transport == nil {
		opts.Transport = vaultHTTP
	}
	bound := &tenantCredential{tenantID: tenantID, scope: r.cl.KeyVaultScope}
	bound.use(cred)
	c := &client{bound: bound, url: "https://" + host, opts: opts}
	r.clients.Put(k, c)
	return c, nil
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
// one is unknown, and only Enabled=false is returned.
func disabledMeta(ctx context.Context, sc *azsecrets.Client, name string) (tenant.SecretMeta, error) {
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
	// A proxy's refusal to tunnel to the vault is final, not a blip.
	OnProxyConnectResponse: outcome.CheckProxyConnect,
	DialContext: (&net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
	}).DialContext,
	TLSClientConfig: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(DefaultMaxClients),
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

// hostPolicy refuses to send a request anywhere but the vault's host: the
// challenge policy attaches the vault token to whatever URL a request has,
// and a next-page link comes from the response.
type hostPolicy string

func (h hostPolicy) Do(req *policy.Request) (*http.Response, error) {
	u := req.Raw().URL
	if u.Scheme != "https" || !strings.EqualFold(u.Hostname(), string(h)) || (u.Port() != "" && u.Port() != "443") {
		return nil, errForeignHost
	}
	return req.Next()
}
