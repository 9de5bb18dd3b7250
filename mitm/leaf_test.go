package mitm

import (
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"
)

func TestLeafVerifies(t *testing.T) {
	ca := loadCA(t)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("AppendCertsFromPEM(CertPEM()) = false")
	}
	for _, tc := range []struct{ host, verifyAs string }{
		{"pypi.org", "pypi.org"},
		{"Files.PythonHosted.org.", "files.pythonhosted.org"},
		{"localhost", "localhost"},
		{"127.0.0.1", "127.0.0.1"},
		{"[::1]", "::1"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			cert, err := ca.Leaf(tc.host)
			if err != nil {
				t.Fatalf("Leaf(%q) = %v", tc.host, err)
			}
			if len(cert.Certificate) != 2 {
				t.Fatalf("Leaf(%q) chain has %d certificates, want [leaf, ca]", tc.host, len(cert.Certificate))
			}
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			inter := x509.NewCertPool()
			_, err = leaf.Verify(x509.VerifyOptions{
				DNSName:       tc.verifyAs,
				Roots:         roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Errorf("Leaf(%q).Verify(%q) = %v", tc.host, tc.verifyAs, err)
			}
			if err := leaf.VerifyHostname("elsewhere.example"); err == nil {
				t.Errorf("Leaf(%q) also valid for elsewhere.example", tc.host)
			}
			if leaf.PublicKeyAlgorithm != x509.ECDSA || leaf.KeyUsage != x509.KeyUsageDigitalSignature || leaf.IsCA {
				t.Errorf("Leaf(%q): key %v, usage %v, IsCA %v; want ECDSA, digitalSignature, not a CA",
					tc.host, leaf.PublicKeyAlgorithm, leaf.KeyUsage, leaf.IsCA)
			}
			if string(leaf.AuthorityKeyId) != string(ca.Certificate().SubjectKeyId) {
				t.Errorf("Leaf(%q) authority key id %x, want the CA's %x", tc.host, leaf.AuthorityKeyId, ca.Certificate().SubjectKeyId)
			}
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 397*24*time.Hour+time.Hour {
				t.Errorf("Leaf(%q) valid for %v, want 397 days and an hour", tc.host, got)
			}
			if cert.Leaf == nil || !cert.Leaf.Equal(leaf) {
				t.Errorf("Leaf(%q).Leaf is not the parsed leaf", tc.host)
			}
		})
	}
}

func TestLeafInvalidHost(t *testing.T) {
	ca := loadCA(t)
	for _, host := range []string{"", "pypi.org:443", "a b", "-x.org", "a..b", "fe80::1%eth0"} {
		if _, err := ca.Leaf(host); err == nil {
			t.Errorf("Leaf(%q) = nil error, want invalid host", host)
		}
	}
}

func TestLeafCappedByCA(t *testing.T) {
	ca := loadCA(t)
	ca.now = func() time.Time { return ca.Certificate().NotAfter.Add(-30 * 24 * time.Hour) }
	cert, err := ca.Leaf("pypi.org")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Errorf("leaf NotAfter = %v, want the CA's %v", cert.Leaf.NotAfter, ca.Certificate().NotAfter)
	}
	ca.now = func() time.Time { return ca.Certificate().NotAfter.Add(time.Second) }
	if _, err := ca.Leaf("npmjs.org"); err == nil {
		t.Error("Leaf after the CA expired = nil error, want one")
	}
}

func TestLeafCache(t *testing.T) {
	ca := loadCA(t)
	a, err := ca.Leaf("pypi.org")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ca.Leaf("PYPI.org.")
	if a != b {
		t.Error("Leaf(pypi.org) twice returned two certificates, want the cached one")
	}
	if n := ca.signs.Load(); n != 1 {
		t.Errorf("signed %d times, want 1", n)
	}
}

func TestLeafConcurrentSignsOnce(t *testing.T) {
	ca := loadCA(t)
	const n = 50
	certs := make([]any, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c, err := ca.Leaf("registry.npmjs.org")
			if err != nil {
				t.Error(err)
			}
			certs[i] = c
		})
	}
	close(start)
	wg.Wait()
	for i := range certs {
		if certs[i] != certs[0] {
			t.Fatalf("caller %d got another certificate", i)
		}
	}
	if got := ca.signs.Load(); got != 1 {
		t.Errorf("%d concurrent first requests signed %d times, want 1", n, got)
	}
}

func TestLeafLRU(t *testing.T) {
	ca := loadCA(t)
	ca.max = 2
	leaf := func(h string) any {
		t.Helper()
		c, err := ca.Leaf(h)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := leaf("a.example")
	leaf("b.example")
	if leaf("a.example") != a { // a is now the most recently used
		t.Fatal("a.example re-signed while cached")
	}
	leaf("c.example") // evicts b
	if n := ca.signs.Load(); n != 3 {
		t.Fatalf("signs = %d, want 3", n)
	}
	if leaf("a.example") != a {
		t.Error("a.example evicted, want b.example (least recently used) out")
	}
	leaf("b.example")
	if n := ca.signs.Load(); n != 4 {
		t.Errorf("signs = %d, want 4 (b.example signed again)", n)
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if len(ca.leaves) != 2 || ca.lru.Len() != 2 {
		t.Errorf("cache holds %d hosts (%d in the list), want 2", len(ca.leaves), ca.lru.Len())
	}
}

func TestLeafRenewed(t *testing.T) {
	ca := loadCA(t)
	now := time.Now()
	ca.now = func() time.Time { return now }
	a, _ := ca.Leaf("pypi.org")
	now = now.Add(395 * 24 * time.Hour) // two days left: kept
	if b, _ := ca.Leaf("pypi.org"); b != a {
		t.Error("leaf with two days left was re-signed")
	}
	now = now.Add(36 * time.Hour) // half a day left: signed again
	b, err := ca.Leaf("pypi.org")
	if err != nil {
		t.Fatal(err)
	}
	if b == a || !b.Leaf.NotAfter.After(a.Leaf.NotAfter) {
		t.Error("leaf with half a day left was not re-signed")
	}
}

func TestLeafIPNormalised(t *testing.T) {
	ca := loadCA(t)
	a, _ := ca.Leaf("::1")
	b, _ := ca.Leaf("0:0::1")
	if a != b {
		t.Error("::1 and 0:0::1 got different leaves")
	}
	if ip := a.Leaf.IPAddresses; len(ip) != 1 || !ip[0].Equal(net.IPv6loopback) {
		t.Errorf("IP SANs = %v, want [::1]", ip)
	}
}
