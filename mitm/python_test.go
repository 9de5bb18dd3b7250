package mitm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pythonCheck connects to 127.0.0.1:PORT as "localhost", trusting only
// CAFILE, with Python 3.13's default VERIFY_X509_STRICT turned on where
// the ssl module has it. It prints "strict=1" or "strict=0", then "ok ..."
// or "rejected: ..." (exit status 1).
const pythonCheck = `
import socket, ssl, sys
cafile, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=cafile)
strict = hasattr(ssl, "VERIFY_X509_STRICT")
if strict:
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
print("strict=%d" % strict, ssl.OPENSSL_VERSION)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            print("ok", t.version(), dict(x[0] for x in t.getpeercert()["subject"]))
except ssl.SSLError as e:
    print("rejected:", e)
    sys.exit(1)
`

// requirePython returns python3's path. It skips the test when python3 is
// missing, except in CI (CI=true), where the check must run.
func requirePython(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 not found in CI: %v", err)
		}
		t.Skipf("python3 not found: %v", err)
	}
	return py
}

// pythonHandshake serves ca's leaf for localhost on 127.0.0.1:0 and runs
// pythonCheck against it, trusting caPEM only. It returns the script's
// output, whether Python accepted the chain, and whether it checked
// strictly.
func pythonHandshake(t *testing.T, py string, ca *CA, caPEM []byte) (out string, accepted, strict bool) {
	t.Helper()
	leaf, err := ca.Leaf("localhost")
	if err != nil {
		t.Fatal(err)
	}
	cafile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(cafile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*leaf}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// The handshake fails when Python rejects the chain;
			// that is Python's verdict to report, not ours.
			c.(*tls.Conn).HandshakeContext(t.Context())
			c.Close()
		}
	})
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cmd := exec.CommandContext(t.Context(), py, "-c", pythonCheck, cafile, port)
	b, err := cmd.CombinedOutput()
	out = strings.TrimSpace(string(b))
	if err != nil {
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "rejected:") {
			t.Fatalf("python3 check did not run: %v\n%s", err, out)
		}
	}
	return out, err == nil, strings.HasPrefix(out, "strict=1")
}

// TestPythonStrictAcceptsOurCA is FIELD-NOTES 1.7: Python 3.13 turns on
// OpenSSL's strict X.509 checks by default, which goproxy's built-in CA
// fails. Ours must pass them.
func TestPythonStrictAcceptsOurCA(t *testing.T) {
	py := requirePython(t)
	ca := loadCA(t)
	out, ok, _ := pythonHandshake(t, py, ca, ca.CertPEM())
	t.Logf("python3 with our CA:\n%s", out)
	if !ok {
		t.Fatalf("Python rejected a leaf from Init's CA:\n%s", out)
	}
}

// TestPythonStrictRejectsGoproxyStyleCA shows that the check above can
// fail: a CA built like goproxy's built-in one (basicConstraints CA:TRUE,
// no keyUsage) is rejected with "CA cert does not include key usage
// extension".
func TestPythonStrictRejectsGoproxyStyleCA(t *testing.T) {
	py := requirePython(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "GoProxy", Organization: []string{"GoProxy"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// no KeyUsage, as goproxy's ca.pem
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(cert, key)
	out, ok, strict := pythonHandshake(t, py, ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	t.Logf("python3 with a goproxy-style CA:\n%s", out)
	if !strict {
		t.Skip("this Python's ssl module has no VERIFY_X509_STRICT")
	}
	if ok {
		t.Fatalf("Python accepted a CA without keyUsage under VERIFY_X509_STRICT; the strict check proves nothing:\n%s", out)
	}
	if !strings.Contains(out, "key usage") {
		t.Errorf("Python rejected the goproxy-style CA for another reason than its missing keyUsage:\n%s", out)
	}
}
