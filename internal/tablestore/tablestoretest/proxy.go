package tablestoretest

import (
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
)

// Proxy is a TCP proxy in front of Azurite that can make storage slow or
// silent (connections accepted, nothing answered), as a congested or hung
// storage account is, without touching the SDK or the store.
type Proxy struct {
	ln     net.Listener
	target string
	path   string

	mu     sync.Mutex
	cond   *sync.Cond
	delay  time.Duration
	silent bool
	closed bool
	conns  map[net.Conn]struct{}
}

// StartProxy starts a proxy in front of the Azurite table endpoint of the
// test's environment; it stops when the test ends.
func StartProxy(t testing.TB) *Proxy {
	t.Helper()
	if os.Getenv(EndpointEnv) == "" {
		Registry(t) // skips, or fails in CI
	}
	u, err := url.Parse(os.Getenv(EndpointEnv))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: u.Host, path: u.Path, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Endpoint is the proxied table endpoint.
func (p *Proxy) Endpoint() string { return "http://" + p.ln.Addr().String() + p.path }

// Registry returns reg reached through the proxy.
func (p *Proxy) Registry(reg config.Registry) config.Registry {
	reg.Connection = storageconn.DevConnectionString(p.Endpoint(), "")
	reg.ConnectionSetting = "TENANT_REGISTRY_CONNECTION"
	return reg
}

// SetDelay adds rtt to every round trip: half of it before each chunk is
// forwarded, in each direction.
func (p *Proxy) SetDelay(rtt time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = rtt / 2
}

// Silence makes storage accept connections and send nothing (on) or
// resume, delivering what was held (off).
func (p *Proxy) Silence(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = on
	p.cond.Broadcast()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) serve(client net.Conn) {
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client) || !p.track(upstream) {
		client.Close()
		upstream.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(upstream, client); done <- struct{}{} }()
	go func() { p.pipe(client, upstream); done <- struct{}{} }()
	<-done
	client.Close()
	upstream.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, upstream)
	p.mu.Unlock()
}

// pipe copies src to dst chunk by chunk, holding each chunk while the proxy
// is silent and for the delay.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.silent && !p.closed {
				p.cond.Wait()
			}
			delay, closed := p.delay, p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}
