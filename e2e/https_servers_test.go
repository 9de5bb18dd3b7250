//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The HTTPS tests (issue 4) run three parties on loopback, each with its
// own certificate authority:
//
//	client (pip, npm, Go)  ──CONNECT──▶  stageproxy  ──TLS──▶  origin
//	trusts the proxy's CA               trusts the origin CA    leaf for localhost
//	(ca init's ca.crt)                  (--upstream-ca)         and 127.0.0.1
//
// The origin CA plays the public registries' CA. Hosts in --mitm-hosts
// (here "localhost") are intercepted: the client sees a leaf the proxy
// signed, and the proxy can cache. Any other host ("127.0.0.1") is
// tunnelled blind: the client sees the origin's own leaf.

// originPKI is the test CA for the origins and its leaf.
type originPKI struct {
	// CAFile is the CA certificate as a PEM file, for --upstream-ca,
	// PIP_CERT or NODE_EXTRA_CA_CERTS.
	CAFile string
	// Pool holds the CA certificate alone, for Go clients.
	Pool *x509.CertPool
	// Leaf is the origins' certificate and key, valid for "localhost" and
	// 127.0.0.1.
	Leaf tls.Certificate
}

// LeafFingerprint is the SHA-256 of the leaf's DER encoding.
func (p *originPKI) LeafFingerprint() [32]byte { return sha256.Sum256(p.Leaf.Certificate[0]) }

// newOriginPKI makes an ECDSA P-256 CA and a leaf it signs, and writes the
// CA certificate to a temp file. Both pass Python 3.13's strict checks
// (critical basicConstraints and keyUsage on the CA, key identifiers, an
// extended key usage on the leaf), which Go sets or derives itself.
func newOriginPKI(t *testing.T) *originPKI {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"stageproxy e2e"}, CommonName: "stageproxy e2e origin CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{Organization: []string{"stageproxy e2e"}, CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}

	caFile := filepath.Join(t.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &originPKI{
		CAFile: caFile,
		Pool:   pool,
		Leaf:   tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
	}
}

// tlsOrigin is an HTTPS origin on 127.0.0.1 that records its requests (in
// rec) and the TLS handshakes that reached it, failed ones included.
type tlsOrigin struct {
	// Port is the port it listens on.
	Port string
	rec  *recorder

	mu     sync.Mutex // protects hellos and errLog
	hellos []tlsHello // every ClientHello, in order
	errLog []string   // the server's error log: failed handshakes
}

// tlsHello is a ClientHello an origin received.
type tlsHello struct {
	serverName string // SNI
	remoteAddr string
}

// URL returns the origin's base URL for host ("localhost" or "127.0.0.1").
func (o *tlsOrigin) URL(host string) string { return "https://" + net.JoinHostPort(host, o.Port) }

// helloCount returns how many TLS handshakes have begun.
func (o *tlsOrigin) helloCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.hellos)
}

// helloSnapshot returns the ClientHellos received so far.
func (o *tlsOrigin) helloSnapshot() []tlsHello {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.hellos)
}

// String summarises the origin's handshakes, error log and requests, for
// failure messages.
func (o *tlsOrigin) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "origin :%s: %d TLS handshakes begun\n", o.Port, len(o.hellos))
	for _, h := range o.hellos {
		fmt.Fprintf(&b, "  ClientHello SNI=%q from %s\n", h.serverName, h.remoteAddr)
	}
	for _, e := range o.errLog {
		fmt.Fprintf(&b, "  error log: %s\n", e)
	}
	fmt.Fprintf(&b, "requests:\n%s", o.rec.String())
	return b.String()
}

// Write is the origin server's error log: net/http reports failed TLS
// handshakes there. Kept for failure messages instead of the test's stderr.
func (o *tlsOrigin) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errLog = append(o.errLog, strings.TrimSpace(string(p)))
	return len(p), nil
}

// newTLSOrigin starts an HTTPS origin on 127.0.0.1 with the leaf of pki.
// handler receives the base URL clients use, "https://localhost:PORT", before
// the first request can arrive, for documents that link to the origin
// (npm's tarball URLs).
func newTLSOrigin(t *testing.T, pki *originPKI, handler func(baseURL string) http.Handler) *tlsOrigin {
	t.Helper()
	o := &tlsOrigin{rec: &recorder{}}
	srv := httptest.NewUnstartedServer(nil)
	_, o.Port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	srv.Config.Handler = o.rec.wrap(handler(o.URL("localhost")))
	srv.Config.ErrorLog = log.New(o, "", 0)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.Leaf},
		MinVersion:   tls.VersionTLS12,
		// Called at each ClientHello: a handshake reached the origin,
		// whether or not it completes.
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			o.mu.Lock()
			o.hellos = append(o.hellos, tlsHello{serverName: hello.ServerName, remoteAddr: hello.Conn.RemoteAddr().String()})
			o.mu.Unlock()
			return nil, nil
		},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", o)
		}
	})
	return o
}

// proxyCA is the interception CA that `stageproxy ca init` made.
type proxyCA struct {
	// Dir is what --mitm-ca takes: it holds ca.crt and ca.key.
	Dir string
	// CertFile is Dir/ca.crt, for PIP_CERT and NODE_EXTRA_CA_CERTS.
	CertFile string
	// Pool holds ca.crt alone, for Go clients.
	Pool *x509.CertPool
}

// initProxyCA runs `stageproxy ca init --out DIR` into a fresh directory,
// as an operator would, and loads the certificate it wrote.
func initProxyCA(t *testing.T) *proxyCA {
	t.Helper()
	if proxyBuildErr != nil {
		t.Fatal(proxyBuildErr)
	}
	dir := filepath.Join(t.TempDir(), "ca")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args := []string{"ca", "init", "--out", dir}
	cmd := exec.CommandContext(ctx, proxyBin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stageproxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	ca := &proxyCA{Dir: dir, CertFile: filepath.Join(dir, "ca.crt"), Pool: x509.NewCertPool()}
	pemBytes, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatalf("stageproxy %s: %v", strings.Join(args, " "), err)
	}
	if !ca.Pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("stageproxy %s: %s holds no PEM certificate:\n%s", strings.Join(args, " "), ca.CertFile, pemBytes)
	}
	return ca
}

// allPorts lets CONNECT reach the origins' random ports; the default
// tunnelAllowedPorts (Polipo's list) would refuse them with 403.
const allPorts = "tunnelAllowedPorts = 1-65535"

// startMITMProxy starts stageproxy intercepting "localhost" with ca,
// trusting upstreamCA (unless empty) for origins, with the config-file
// lines given and every CONNECT port allowed.
func startMITMProxy(t *testing.T, ca *proxyCA, upstreamCA string, lines ...string) *proxyProcess {
	t.Helper()
	args := []string{
		"--config", writeConfig(t, append([]string{"# stageproxy e2e: HTTPS interception", allPorts}, lines...)...),
		"--mitm-ca", ca.Dir, "--mitm-hosts", "localhost",
	}
	if upstreamCA != "" {
		args = append(args, "--upstream-ca", upstreamCA)
	}
	return startProxy(t, args...)
}
