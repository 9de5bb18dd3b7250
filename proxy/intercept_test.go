package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA signs leaf certificates for the interception tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test interception CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) leaf(host string) (*tls.Certificate, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}, nil
}

// httpsClient trusts roots and goes through the proxy.
func (p *testProxy) httpsClient(t *testing.T, roots *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: http.ProxyURL(p.url), TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestInterception(t *testing.T) {
	var served atomic.Int32
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Cache-Control", "max-age=600, public")
		fmt.Fprint(w, "package bytes")
	}))
	t.Cleanup(origin.Close)
	originRoots := x509.NewCertPool()
	originRoots.AddCert(origin.Certificate())
	ca := newTestCA(t)
	// httptest's certificate names 127.0.0.1 and example.com; only the
	// first is reachable here.
	intercept := &Intercept{Match: func(h string) bool { return h == "127.0.0.1" }, Leaf: ca.leaf}

	t.Run("second fetch is a hit", func(t *testing.T) {
		served.Store(0)
		p := newTestProxy(t, Options{UpstreamRoots: originRoots, Intercept: intercept})
		client := p.httpsClient(t, ca.pool)
		for i, want := range []string{"stageproxy; fwd=uri-miss; fwd-status=200; stored", statusHit} {
			resp, err := client.Get(origin.URL + "/pkg.whl")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "package bytes" || resp.Header.Get("Cache-Status") != want {
				t.Errorf("fetch %d: %q, Cache-Status %q, want %q", i+1, body, resp.Header.Get("Cache-Status"), want)
			}
			if got := resp.TLS.PeerCertificates[0].Issuer.CommonName; got != "test interception CA" {
				t.Errorf("fetch %d: leaf issued by %q, want the interception CA", i+1, got)
			}
		}
		if n := served.Load(); n != 1 {
			t.Errorf("origin served %d requests, want 1", n)
		}
	})

	t.Run("unlisted host is tunnelled", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(origin.URL, "https://"))
		var pr PortRange
		fmt.Sscan(port, &pr.Lo)
		pr.Hi = pr.Lo
		p := newTestProxy(t, Options{UpstreamRoots: originRoots, TunnelAllowedPorts: []PortRange{pr},
			Intercept: &Intercept{Match: func(h string) bool { return h == "registry.example" }, Leaf: ca.leaf}})
		resp, err := p.httpsClient(t, originRoots).Get(origin.URL + "/tunnelled")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !resp.TLS.PeerCertificates[0].Equal(origin.Certificate()) {
			t.Errorf("client saw %q, want the origin's own certificate", resp.TLS.PeerCertificates[0].Subject)
		}
		if resp.Header.Get("Cache-Status") != "" {
			t.Errorf("a tunnelled response carries Cache-Status %q", resp.Header.Get("Cache-Status"))
		}
	})

	t.Run("unverifiable origin", func(t *testing.T) {
		served.Store(0)
		p := newTestProxy(t, Options{Intercept: intercept}) // system roots only
		for range 2 {
			resp, err := p.httpsClient(t, ca.pool).Get(origin.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "127.0.0.1") || !strings.Contains(string(body), "certificate") {
				t.Errorf("%d %q, want 502 naming the host and the certificate", resp.StatusCode, body)
			}
		}
		if n := served.Load(); n != 0 {
			t.Errorf("origin served %d requests over an unverified connection", n)
		}
		if st := p.cache.Stats(); st.Objects != 0 {
			t.Errorf("cache holds %d objects", st.Objects)
		}
	})
}
