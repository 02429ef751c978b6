package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// benchSweepKeys is benchSweep with tenants that each register, beside
// Graph and their vault's secret, an RSA key in that vault, which the keys
// task (SWEEP_TASKS' default, access,keys) proves in every sweep. Cold is
// three round trips a tenant (both tokens; Graph's $batch, the secret, the
// key's read and the vault's wrap; the unwrap), so its physical limit is
// N·3L/C; warm stays one (everything at once, the key's read and its unwrap
// among it): N·L/C, the same limit as without keys. The naive baseline adds
// the key's calls one after another: cold, the read, the vault's wrap and
// the unwrap; warm, the read and the unwrap of a value wrapped locally.
func benchSweepKeys(b *testing.B, n, concurrency int) {
	fx := newFixture(b)
	// A key's RSA material takes ~0.1 s to generate: the 2,000 keys share
	// 16 (each vault still unwraps only what its key's public part wrapped).
	fx.cloud.ShareRSAKeys(16)
	regs := make([]tenant.Registration, n)
	for i := range n {
		id, vault := tenantID(300000+i), fmt.Sprintf("bk%d", i)
		fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "Org " + id[:8], Users: 3})
		fx.cloud.AddVault(vault, id, cloudtest.Vault{
			Secrets: map[string]cloudtest.Secret{"db-password": {Value: "customer-secret-value-" + id[:8], Enabled: true,
				ExpiresOn: time.Now().Add(400 * 24 * time.Hour)}},
			Keys: map[string]cloudtest.Key{"cmk": {Enabled: true, ExpiresOn: time.Now().Add(400 * 24 * time.Hour)}},
		})
		regs[i] = reg(id, true, vault, "db-password")
		regs[i].KeyVaults[0].Keys = []string{"cmk"}
	}
	fx.onboard(b, regs...)
	fx.cloud.SetLatency(benchLatency)
	p := startHost(b, fx.env("LOG_LEVEL=info", "SWEEP_CONCURRENCY="+strconv.Itoa(concurrency), "SWEEP_BUDGET=9m"))
	in := listenWith(b, fx, p, hostListenerOptions(b))
	unwraps := func() int {
		total := 0
		for i := range n {
			total += fx.cloud.UnwrapCount(fmt.Sprintf("bk%d", i), "cmk")
		}
		return total
	}
	sweepOnce := func(name string, roundTrips int) sweepStats {
		fx.cloud.ResetCounters()
		cpu0 := procCPU(b, p.cmd.Process.Pid)
		busy0, _ := machineCPU(b)
		before := unwraps()
		t0 := time.Now()
		if code, raw := timer(b, p, "bench-"+name); code != http.StatusOK {
			b.Fatalf("%s sweep: %d %s", name, code, raw)
		}
		run, st := waitRun(b, fx, "bench-"+name, 20*time.Minute)
		busy1, cores := machineCPU(b)
		elapsed := time.Since(t0)
		cpu1 := procCPU(b, p.cmd.Process.Pid)
		if st.Status != "finished" || run.OK != n {
			b.Fatalf("%s sweep %s: %s", name, st.Status, run)
		}
		if got := unwraps() - before; got != n {
			b.Fatalf("%s sweep: the vaults unwrapped %d times for %d keys", name, got, n)
		}
		b.Logf("%s: %s", name, run)
		b.Logf("%s: %s", name, timeline(b, p, run, st.Results, concurrency))
		return sweepStats{
			wall:    time.Duration(run.WallMs) * time.Millisecond,
			ideal:   time.Duration(n*roundTrips) * benchLatency / time.Duration(concurrency),
			cpu:     cpu1 - cpu0,
			tokens:  fx.cloud.TotalTokenRequests(),
			conns:   fx.cloud.Connections(),
			resumed: fx.cloud.ResumedConnections(),
			machine: (busy1 - busy0).Seconds() / (elapsed.Seconds() * float64(cores)),
			elapsed: elapsed,
			cores:   cores,
		}
	}
	cold := sweepOnce("keys-cold", 3)
	warm := sweepOnce("keys-warm", 1)
	rss := peakRSS(b, p.cmd.Process.Pid)
	in.stop()
	<-in.done

	naiveCold, naiveWarm := naiveKeySweeps(b, fx.cloud, n, concurrency)
	for _, s := range []struct {
		name  string
		r     int
		st    sweepStats
		naive time.Duration
	}{{"cold", 3, cold, naiveCold}, {"warm", 1, warm, naiveWarm}} {
		ratio := s.st.wall.Seconds() / s.st.ideal.Seconds()
		b.Logf("keys %s sweep of %5d tenants, one key each (C %d, L %s): wall %6.2fs, ideal N·%dL/C %6.2fs, ratio %.2f, naive serial net/http %6.2fs (%.2f× ours), CPU %.2f ms/tenant, %d TLS connections (%d resumed), %d token requests, the machine's %d cores %.0f%% busy (the handler %.0f%%)",
			s.name, n, concurrency, benchLatency, s.st.wall.Seconds(), s.r, s.st.ideal.Seconds(), ratio,
			s.naive.Seconds(), s.naive.Seconds()/s.st.wall.Seconds(), s.st.cpu.Seconds()*1000/float64(n), s.st.conns, s.st.resumed, s.st.tokens,
			s.st.cores, 100*s.st.machine, 100*s.st.cpu.Seconds()/(s.st.elapsed.Seconds()*float64(s.st.cores)))
		b.ReportMetric(ratio, "keys-"+s.name+"-ratio")
		b.ReportMetric(s.st.wall.Seconds(), "keys-"+s.name+"-wall-s")
		b.ReportMetric(s.naive.Seconds(), "keys-"+s.name+"-naive-s")
		b.ReportMetric(s.st.cpu.Seconds()*1000/float64(n), "keys-"+s.name+"-cpu-ms/tenant")
	}
	mb := float64(rss) / (1 << 20)
	b.Logf("keys: handler CPU %.2f ms per tenant-sweep (cold and warm averaged); peak RSS %.1f MB",
		(cold.cpu+warm.cpu).Seconds()*1000/float64(2*n), mb)
	b.ReportMetric(mb, "keys-peak-RSS-MB")
}

// naiveKeySweeps is naiveSweeps with the key's calls after the secret's,
// one after another: cold, the key's read, the vault's wrap and the unwrap;
// warm, the read and the unwrap of a value wrapped locally with the public
// part the read answered.
func naiveKeySweeps(b *testing.B, c *cloudtest.Cloud, n, concurrency int) (cold, warm time.Duration) {
	hc := c.HTTPClient()
	call := func(method, rawURL, tok string, body any, into any, hdr ...string) {
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = strings.NewReader(string(raw))
		}
		req, _ := http.NewRequest(method, rawURL, rd)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if len(hdr) == 2 {
			req.Header.Set(hdr[0], hdr[1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("naive %s %s: %d %s", method, rawURL, resp.StatusCode, raw)
		}
		if into != nil {
			if err := json.Unmarshal(raw, into); err != nil {
				b.Fatal(err)
			}
		}
	}
	token := func(tid, scope string) string {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {testAppID}, "client_secret": {testAppSecret}, "scope": {scope}}
		req, _ := http.NewRequest(http.MethodPost, "https://"+cloudtest.LoginHost+"/"+tid+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var tk struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tk); err != nil || tk.AccessToken == "" {
			b.Fatalf("naive token: %d %v", resp.StatusCode, err)
		}
		return tk.AccessToken
	}
	b64 := base64.RawURLEncoding
	graphTok, vaultTok := make([]string, n), make([]string, n)
	sweep := func(coldSweep bool) time.Duration {
		start := time.Now()
		work := make(chan int)
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				for i := range work {
					tid, vault := tenantID(300000+i), cloudtest.VaultURL(fmt.Sprintf("bk%d", i))
					if coldSweep {
						graphTok[i] = token(tid, cloudtest.GraphResource+"/.default")
						vaultTok[i] = token(tid, cloudtest.VaultResource+"/.default")
					}
					call(http.MethodGet, "https://"+cloudtest.GraphHost+"/v1.0/organization?$select=id,displayName", graphTok[i], nil, nil)
					call(http.MethodGet, "https://"+cloudtest.GraphHost+"/v1.0/users/$count", graphTok[i], nil, nil, "ConsistencyLevel", "eventual")
					call(http.MethodGet, vault+"/secrets/db-password?api-version=7.5", vaultTok[i], nil, nil)
					var key struct {
						Key struct{ Kid, N, E string }
					}
					call(http.MethodGet, vault+"/keys/cmk?api-version=7.5", vaultTok[i], nil, &key)
					version := key.Key.Kid[strings.LastIndexByte(key.Key.Kid, '/')+1:]
					dek := make([]byte, 32)
					_, _ = rand.Read(dek)
					var wrapped struct{ Value string }
					if coldSweep {
						call(http.MethodPost, vault+"/keys/cmk/"+version+"/wrapkey?api-version=7.5", vaultTok[i],
							map[string]string{"alg": "RSA-OAEP-256", "value": b64.EncodeToString(dek)}, &wrapped)
					} else {
						nb, _ := b64.DecodeString(key.Key.N)
						eb, _ := b64.DecodeString(key.Key.E)
						pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(new(big.Int).SetBytes(eb).Int64())}
						w, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil)
						if err != nil {
							b.Fatal(err)
						}
						wrapped.Value = b64.EncodeToString(w)
					}
					var out struct{ Value string }
					call(http.MethodPost, vault+"/keys/cmk/"+version+"/unwrapkey?api-version=7.5", vaultTok[i],
						map[string]string{"alg": "RSA-OAEP-256", "value": wrapped.Value}, &out)
					if out.Value != b64.EncodeToString(dek) {
						b.Fatal("naive: the vault unwrapped another value")
					}
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		return time.Since(start)
	}
	return sweep(true), sweep(false)
}
