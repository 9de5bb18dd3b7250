//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTPSUnlistedHostTunnelled asks for https://127.0.0.1:PORT/ through a
// proxy that intercepts only "localhost": the proxy must tunnel the bytes
// blind, so the client, trusting the origin CA alone, sees the origin's own
// leaf, and the origin gets the request without the proxy's Via.
func TestHTTPSUnlistedHostTunnelled(t *testing.T) {
	t.Parallel()
	const body = "stageproxy e2e tunnelled origin\n"
	pki := newOriginPKI(t)
	origin := newTLSOrigin(t, pki, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=600")
			io.WriteString(w, body)
		})
	})
	ca := initProxyCA(t)
	proxy := startMITMProxy(t, ca, pki.CAFile)
	client := proxyClient(t, proxy, pki.Pool)

	target := origin.URL("127.0.0.1") + "/hello.txt"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s through the proxy: %v", target, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK || string(b) != body {
		t.Errorf("GET %s = %d %q, want 200 %q", target, resp.StatusCode, b, body)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("GET %s: no TLS peer certificate", target)
	}
	peer := resp.TLS.PeerCertificates[0]
	if got, want := sha256.Sum256(peer.Raw), pki.LeafFingerprint(); got != want {
		t.Errorf("GET %s: leaf %q (issuer %q) SHA-256 %x, want the origin's own leaf %x",
			target, peer.Subject, peer.Issuer, got, want)
	}
	if cs := resp.Header.Values("Cache-Status"); len(cs) > 0 {
		t.Errorf("GET %s: Cache-Status %q, want none (a blind tunnel cannot add one)", target, cs)
	}
	if got := origin.rec.count("/hello.txt"); got != 1 {
		t.Errorf("origin served /hello.txt %d times, want 1", got)
	}
	if direct := origin.rec.directPaths(); len(direct) != 1 {
		t.Errorf("origin got %d requests without Via: %s, want 1 (a blind tunnel adds none)", len(direct), proxyVia)
	}
}

// TestHTTPSUnverifiableOrigin intercepts localhost with a proxy that was
// not given the origin CA (no --upstream-ca), so it cannot verify the
// origin's certificate. A client trusting the proxy's CA must get a 502
// naming the host and the certificate, the origin must see TLS handshakes
// but no request, and nothing may be cached: a second request is again a
// 502 and costs another handshake.
func TestHTTPSUnverifiableOrigin(t *testing.T) {
	t.Parallel()
	pki := newOriginPKI(t)
	origin := newTLSOrigin(t, pki, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=600")
			io.WriteString(w, "stageproxy e2e origin\n")
		})
	})
	ca := initProxyCA(t)
	proxy := startMITMProxy(t, ca, "")
	client := proxyClient(t, proxy, ca.Pool)

	target := origin.URL("localhost") + "/x"
	hellos := 0
	for i := 1; i <= 2; i++ {
		status, body := getOrRefused(t, client, target)
		if status != http.StatusBadGateway || !strings.Contains(body, "localhost") || !strings.Contains(body, "certificate") {
			t.Errorf("GET %s (#%d) through the proxy = %d %q, want 502 naming localhost and the certificate",
				target, i, status, body)
		}
		if n := origin.helloCount(); n <= hellos {
			t.Errorf("GET %s (#%d): origin saw %d TLS handshakes in all, want more than %d (a new attempt, not a stored 502)",
				target, i, n, hellos)
		} else {
			hellos = n
		}
	}
	if reqs := origin.rec.snapshot(); len(reqs) > 0 {
		t.Errorf("origin got requests %v, want none (the proxy must not send a request to an unverified origin)", reqs)
	}
}

// TestHTTPSCAKeyMode checks the CA that `ca init` writes (ca.key mode 0600,
// and a second `ca init` into the same directory changes nothing) and that
// `serve --mitm-ca` refuses a ca.key others can read: exit status 1 or 2,
// a message naming the file and its mode, and no listening socket.
func TestHTTPSCAKeyMode(t *testing.T) {
	t.Parallel()
	ca := initProxyCA(t)
	keyFile := filepath.Join(ca.Dir, "ca.key")
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("ca init wrote %s with mode %#o, want 0600", keyFile, mode)
	}

	before := readFiles(t, ca.CertFile, keyFile)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	again := exec.CommandContext(ctx, proxyBin, "ca", "init", "--out", ca.Dir)
	again.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	out, err := again.CombinedOutput()
	if after := readFiles(t, ca.CertFile, keyFile); !bytes.Equal(after, before) {
		t.Errorf("a second ca init --out %s (%v, %q) changed ca.crt or ca.key, want them kept", ca.Dir, err, out)
	}

	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := writeConfig(t, "# stageproxy e2e: a CA key others can read")
	lw := newLineWriter("listening on ")
	args := []string{"serve", "--listen", "127.0.0.1:0", "--config", conf, "--mitm-ca", ca.Dir, "--mitm-hosts", "localhost"}
	cmd := exec.CommandContext(ctx, proxyBin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	cmd.Stdout = lw
	cmd.Stderr = lw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	select {
	case line := <-lw.found:
		t.Errorf("stageproxy %s started (%q) with ca.key mode 0644, want a refusal", strings.Join(args, " "), line)
		cancel()
		<-done
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || (exit.ExitCode() != 1 && exit.ExitCode() != 2) {
			t.Errorf("stageproxy %s: %v, want exit status 1 or 2", strings.Join(args, " "), err)
		}
		msg := lw.String()
		if !strings.Contains(msg, keyFile) || !(strings.Contains(msg, "644") || strings.Contains(msg, "-rw-r--r--")) {
			t.Errorf("stageproxy %s said %q, want a message naming %s and its mode 0644", strings.Join(args, " "), msg, keyFile)
		}
	}
}

// proxyClient returns a client that sends everything through proxy and
// trusts roots alone for HTTPS.
func proxyClient(t *testing.T, proxy *proxyProcess, roots *x509.CertPool) *http.Client {
	t.Helper()
	proxyURL, err := url.Parse(proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		Proxy:           http.ProxyURL(proxyURL),
		TLSClientConfig: &tls.Config{RootCAs: roots},
		// A proxy may refuse the CONNECT itself instead of the request
		// inside it; keep that answer's body for the test to read.
		OnProxyConnectResponse: func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
			return &connectRefusedError{status: resp.StatusCode, body: string(b)}
		},
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

// connectRefusedError is a proxy's non-200 answer to CONNECT.
type connectRefusedError struct {
	status int
	body   string
}

func (e *connectRefusedError) Error() string {
	return fmt.Sprintf("proxy answered CONNECT with %d: %q", e.status, e.body)
}

// getOrRefused fetches url through client and returns the status and body
// of the answer, whether the proxy gave it to the request inside the
// tunnel or refused the CONNECT itself.
func getOrRefused(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if refused, ok := errors.AsType[*connectRefusedError](err); ok {
		t.Logf("GET %s: %v", url, refused)
		return refused.status, refused.body
	}
	if err != nil {
		t.Fatalf("GET %s through the proxy: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// readFiles returns the contents of files, concatenated.
func readFiles(t *testing.T, files ...string) []byte {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}
