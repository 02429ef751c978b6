// Package cloudtest runs test fakes of Entra ID, Microsoft Graph, Key Vault
// and an App Service managed identity endpoint. The first three answer on one
// TLS listener under the real public-cloud host names (login.microsoftonline.com,
// graph.microsoft.com, <name>.vault.azure.net), so the Azure and Graph SDKs run
// unmodified against them: in process through HTTPClient, and in a child
// process through ProxyURL (HTTPS_PROXY) and WriteCACert (SSL_CERT_FILE).
//
// It is imported only by tests, and by the demo binary (`make demo`, built
// with -tags demo), never by the binary that deploys.
package cloudtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Host names and fixed identifiers of the fake public cloud.
const (
	LoginHost   = "login.microsoftonline.com"
	GraphHost   = "graph.microsoft.com"
	VaultSuffix = "vault.azure.net"

	// AuthorityHost is the Entra ID authority host, as cloud.AzurePublic has it.
	AuthorityHost = "https://" + LoginHost + "/"
	// GraphResource and VaultResource are the token audiences of Graph and
	// Key Vault; TokenExchangeResource is the audience of a managed identity
	// token used as a federated client assertion.
	GraphResource         = "https://graph.microsoft.com"
	VaultResource         = "https://vault.azure.net"
	StorageResource       = "https://storage.azure.com"
	TokenExchangeResource = "api://AzureADTokenExchange"

	// ManagedIdentityTenant is the home tenant of the managed identities of
	// the fake MSI endpoint: the tid of every token it issues. A vault the
	// Function App reads with its managed identity is owned by this tenant.
	ManagedIdentityTenant = "00000000-aaaa-4aaa-8aaa-000000000001"
	// SystemAssignedClientID is the appid of tokens the MSI endpoint issues
	// when no client_id is asked for.
	SystemAssignedClientID = "00000000-aaaa-4aaa-8aaa-00000000005a"

	// TokenMarker starts the signature part of every token the fakes issue,
	// so a test can scan logs and outputs for leaked tokens.
	TokenMarker = "cloudtest-sig-"
)

// Cloud is a running set of fakes. Configure it with SetApp, AddTenant and
// AddVault; every method is safe for concurrent use.
type Cloud struct {
	ca       *testCA
	pool     *x509.CertPool
	srv      *httptest.Server // TLS: Entra ID, Graph, Key Vault
	msi      *httptest.Server // plain http: App Service MSI protocol
	proxy    *httptest.Server // plain http: CONNECT proxy to srv
	tr       *http.Transport
	done     chan struct{}
	miHeader string
	latency  atomic.Int64
	conns    atomic.Int64
	resumed  atomic.Int64

	mu             sync.Mutex
	app            App
	tenants        map[string]*Tenant
	vaults         map[string]*fakeVault
	tokens         map[string]tokenInfo
	issued         []string
	requests       []Request
	tokenReqs      map[string]int
	totalTokenReqs int
	miReqs         int
	miStatus       int
	tunnels        map[net.Conn]struct{}
	rsaUsed        map[int]int    // RSA key material taken from the process's cache, by size
	refused        map[string]int // host -> the proxy's answer to CONNECT
	entra          entraState
	rsaDistinct    int // ShareRSAKeys: distinct key materials a size, 0 for all
	throttle       graphThrottle
	closed         bool
}

// Request is one request a fake received.
type Request struct {
	Host   string // without the port
	Method string
	Path   string
	Query  string
	// Tenant is the tenant in the path for Entra ID, the tid of the bearer
	// token for Graph and Key Vault (empty without a valid token), and empty
	// for the MSI endpoint.
	Tenant string
	At     time.Time
}

// Start starts the fakes; they stop when the test ends.
func Start(t testing.TB) *Cloud {
	t.Helper()
	c, err := New()
	if err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// New starts the fakes outside a test (the demo binary's); Close stops
// them.
func New() (*Cloud, error) {
	ca, err := newTestCA()
	if err != nil {
		return nil, err
	}
	c := &Cloud{
		ca:        ca,
		pool:      x509.NewCertPool(),
		done:      make(chan struct{}),
		miHeader:  "cloudtest-" + randHex(16),
		tenants:   map[string]*Tenant{},
		vaults:    map[string]*fakeVault{},
		tokens:    map[string]tokenInfo{},
		tokenReqs: map[string]int{},
		tunnels:   map[net.Conn]struct{}{},
		rsaUsed:   map[int]int{},
		refused:   map[string]int{},
	}
	c.pool.AddCert(ca.cert)

	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serveTLS))
	c.srv.EnableHTTP2 = true
	c.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.leaf},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	c.srv.Config.ErrorLog = quietLog()
	var counted sync.Map // connections whose handshake was looked at
	c.srv.Config.ConnState = func(cn net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			c.conns.Add(1)
		case http.StateActive: // the handshake is done
			if _, seen := counted.LoadOrStore(cn, true); !seen {
				if tc, ok := cn.(*tls.Conn); ok && tc.ConnectionState().DidResume {
					c.resumed.Add(1)
				}
			}
		case http.StateClosed, http.StateHijacked:
			counted.Delete(cn)
		}
	}
	c.srv.StartTLS()

	c.msi = httptest.NewServer(http.HandlerFunc(c.serveMSI))
	c.proxy = httptest.NewServer(http.HandlerFunc(c.serveProxy))
	c.proxy.Config.ErrorLog = quietLog()

	c.tr = &http.Transport{
		Proxy:               nil, // never HTTPS_PROXY of the test process
		DialContext:         c.dial,
		TLSClientConfig:     &tls.Config{RootCAs: c.pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 200,
		MaxConnsPerHost:     64, // HTTP/2 multiplexes; thousands of TLS handshakes at once would dominate a benchmark
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return c, nil
}

// Close stops the fakes; Start's do so when their test ends.
func (c *Cloud) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	tunnels := c.tunnels
	c.tunnels = map[net.Conn]struct{}{}
	c.mu.Unlock()
	for conn := range tunnels {
		conn.Close()
	}
	c.proxy.Close()
	c.msi.Close()
	c.tr.CloseIdleConnections()
	c.srv.Close()
}

// HTTPClient returns a client that reaches the fakes for the real host names
// and trusts the test CA. It ignores the proxy environment. Loopback
// addresses (the MSI endpoint) are dialled as they are; any other name that
// is not a fake (an unregistered vault, say) fails like a DNS lookup does.
// Use it as azcore's ClientOptions.Transport and as kiota's parent transport
// (its Transport field).
func (c *Cloud) HTTPClient() *http.Client {
	return &http.Client{Transport: c.tr}
}

// CACertPEM returns the test CA's certificate.
func (c *Cloud) CACertPEM() []byte { return slices.Clone(c.ca.certPEM) }

// CertPool returns a pool holding the test CA.
func (c *Cloud) CertPool() *x509.CertPool { return c.pool.Clone() }

// WriteCACert writes the test CA's certificate to a file in t.TempDir, for
// SSL_CERT_FILE of a child process.
func (c *Cloud) WriteCACert(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cloudtest-ca.pem")
	if err := os.WriteFile(path, c.ca.certPEM, 0o600); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	return path
}

// ProxyURL is an http URL of a CONNECT proxy that tunnels to the fakes, for
// HTTPS_PROXY of a child process. CONNECTs to names that are not fakes get
// 502, as an unresolvable name would.
func (c *Cloud) ProxyURL() string { return c.proxy.URL }

// RefuseHost makes the proxy of ProxyURL answer a CONNECT to host with
// status (502 Bad Gateway, say), as a corporate proxy answers for a host it
// cannot resolve or reach or will not let through; 0 lets it through again.
// Clients that dial the fakes themselves (HTTPClient) are not affected.
func (c *Cloud) RefuseHost(host string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if status == 0 {
		delete(c.refused, strings.ToLower(host))
		return
	}
	c.refused[strings.ToLower(host)] = status
}

// ListenerAddr is the host:port of the TLS listener, for a client that
// dials it itself.
func (c *Cloud) ListenerAddr() string { return c.srv.Listener.Addr().String() }

// UseManagedIdentity points azidentity's App Service managed identity
// (IDENTITY_ENDPOINT, IDENTITY_HEADER) at the fake for the rest of the test.
// azidentity reads them when a credential is built, so call it before; and
// MSAL's managed identity token cache is process-wide, so each test uses its
// own client id (NewClientID).
func (c *Cloud) UseManagedIdentity(t testing.TB) {
	t.Setenv("IDENTITY_ENDPOINT", c.msi.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", c.miHeader)
}

// SetManagedIdentityStatus makes the MSI endpoint answer every request with
// this HTTP status (0 restores normal answers).
func (c *Cloud) SetManagedIdentityStatus(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.miStatus = status
}

// SetLatency delays by d every call a sweep makes per tenant: each token
// request, each Graph request (a $batch counts once) and each authenticated
// Key Vault request. The setup calls a real deployment pays once per tenant
// and process (OpenID metadata, instance discovery, Key Vault's
// unauthenticated challenge) are answered at once, so a benchmark's ideal
// counts only the calls that make up the round trips of a tenant.
func (c *Cloud) SetLatency(d time.Duration) { c.latency.Store(int64(d)) }

// Connections is the number of TLS connections the fakes accepted (since
// ResetCounters); a tunnel through ProxyURL is one too.
func (c *Cloud) Connections() int { return int(c.conns.Load()) }

// ResumedConnections is how many of those resumed an earlier TLS session
// (no certificate verification on the client's side).
func (c *Cloud) ResumedConnections() int { return int(c.resumed.Load()) }

// Requests returns the requests received so far (since ResetCounters).
func (c *Cloud) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.requests)
}

// TokenRequests is the number of token endpoint requests for tenant, failed
// ones included.
func (c *Cloud) TokenRequests(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokenReqs[strings.ToLower(tenant)]
}

// TotalTokenRequests is the number of token endpoint requests of all tenants.
func (c *Cloud) TotalTokenRequests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.totalTokenReqs
}

// ManagedIdentityRequests is the number of requests to the MSI endpoint.
func (c *Cloud) ManagedIdentityRequests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.miReqs
}

// IssuedTokens returns every access token the fakes issued, managed identity
// tokens included; ResetCounters does not clear it.
func (c *Cloud) IssuedTokens() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.issued)
}

// ResetCounters clears the request log and the counters.
func (c *Cloud) ResetCounters() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests = nil
	c.tokenReqs = map[string]int{}
	c.totalTokenReqs = 0
	c.miReqs = 0
	c.throttle.since, c.throttle.windows = time.Now(), nil
	c.conns.Store(0)
	c.resumed.Store(0)
}

func (c *Cloud) record(r *http.Request, tenant string) {
	req := Request{
		Host:   hostOnly(r.Host),
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.RawQuery,
		Tenant: tenant,
		At:     time.Now(),
	}
	c.mu.Lock()
	c.requests = append(c.requests, req)
	c.mu.Unlock()
}

// wait applies the configured latency; it reports false when the request or
// the fakes ended first.
func (c *Cloud) wait(r *http.Request) bool {
	d := time.Duration(c.latency.Load())
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.Context().Done():
	case <-c.done:
	}
	return false
}

func (c *Cloud) serveTLS(w http.ResponseWriter, r *http.Request) {
	host := hostOnly(r.Host)
	switch {
	case host == LoginHost:
		c.serveEntra(w, r)
	case host == GraphHost:
		c.serveGraph(w, r)
	case strings.HasSuffix(host, "."+VaultSuffix):
		c.serveVault(w, r, strings.TrimSuffix(host, "."+VaultSuffix))
	default:
		c.record(r, "")
		http.Error(w, "cloudtest: no fake for host "+host, http.StatusMisdirectedRequest)
	}
}

// route says where a host name leads: to the fakes, dialled as it is
// (loopback), or nowhere.
func (c *Cloud) route(host string) (fake, direct bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return false, true
	case LoginHost, GraphHost:
		return true, false
	}
	if name, ok := strings.CutSuffix(host, "."+VaultSuffix); ok && name != "" && !strings.Contains(name, ".") {
		c.mu.Lock()
		_, known := c.vaults[name]
		c.mu.Unlock()
		return known, false
	}
	return false, false
}

func (c *Cloud) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	fake, direct := c.route(host)
	switch {
	case direct:
		return d.DialContext(ctx, network, addr)
	case fake:
		return d.DialContext(ctx, "tcp", c.srv.Listener.Addr().String())
	}
	return nil, &net.OpError{Op: "dial", Net: network,
		Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
}

func (c *Cloud) serveProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "cloudtest proxy: only CONNECT is supported", http.StatusMethodNotAllowed)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	c.mu.Lock()
	refused := c.refused[strings.ToLower(host)]
	c.mu.Unlock()
	if refused != 0 {
		http.Error(w, "cloudtest proxy: refused "+host, refused)
		return
	}
	fake, direct := c.route(host)
	target := c.srv.Listener.Addr().String()
	switch {
	case direct:
		target = r.Host
	case !fake:
		http.Error(w, "cloudtest proxy: no such host "+host, http.StatusBadGateway)
		return
	}
	upstream, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		http.Error(w, "cloudtest proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "cloudtest proxy: cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if !c.track(conn, upstream) {
		conn.Close()
		upstream.Close()
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.untrack(conn, upstream)
		return
	}
	go c.pipe(conn, upstream, brw.Reader)
}

func (c *Cloud) track(conns ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	for _, cn := range conns {
		c.tunnels[cn] = struct{}{}
	}
	return true
}

func (c *Cloud) untrack(conns ...net.Conn) {
	c.mu.Lock()
	for _, cn := range conns {
		delete(c.tunnels, cn)
	}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.Close()
	}
}

func (c *Cloud) pipe(client, upstream net.Conn, buffered *bufio.Reader) {
	defer c.untrack(client, upstream)
	errc := make(chan error, 2)
	go func() {
		// Bytes the client sent right after CONNECT may sit in the buffer.
		_, err := io.Copy(upstream, io.MultiReader(io.LimitReader(buffered, int64(buffered.Buffered())), client))
		errc <- err
	}()
	go func() {
		_, err := io.Copy(client, upstream)
		errc <- err
	}()
	<-errc
}

func hostOnly(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	return strings.ToLower(host)
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// guidFrom derives a stable GUID-shaped id from parts.
func guidFrom(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return fmt.Sprintf("%s-%s-4%s-8%s-%s", h[0:8], h[8:12], h[13:16], h[17:20], h[20:32])
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
