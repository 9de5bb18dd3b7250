//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestHTTPCacheHit fetches one cacheable URL through the proxy twice with
// Go's own client, so that a failure here, needing no external tool, points
// at the proxy's cache rather than at pip or npm.
func TestHTTPCacheHit(t *testing.T) {
	t.Parallel()
	const body = "stageproxy e2e origin\n"
	origin, rec := newOrigin(t, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Cache-Control", "public, max-age=600")
			io.WriteString(w, body)
		})
	})
	proxy := startProxy(t)
	proxyURL, err := url.Parse(proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)},
		Timeout:   30 * time.Second,
	}
	t.Cleanup(client.CloseIdleConnections)

	target := origin.URL + "/hello.txt"
	for i, wantHit := range []bool{false, true} {
		resp := get(t, client, target)
		if resp.body != body {
			t.Errorf("GET %s (#%d) body = %q, want %q", target, i+1, resp.body, body)
		}
		status := resp.header.Get("Cache-Status")
		if !strings.HasPrefix(status, "stageproxy") {
			t.Errorf("GET %s (#%d) Cache-Status = %q, want one naming stageproxy", target, i+1, status)
		}
		if via := resp.header.Values("Via"); !hasVia(via, proxyVia) {
			t.Errorf("GET %s (#%d) Via = %q, want %q", target, i+1, via, proxyVia)
		}
		if isHit := strings.HasPrefix(status, "stageproxy; hit"); isHit != wantHit {
			t.Errorf("GET %s (#%d) Cache-Status = %q, hit = %v, want %v", target, i+1, status, isHit, wantHit)
		}
	}
	if got := rec.count("/hello.txt"); got != 1 {
		t.Errorf("origin served /hello.txt %d times, want 1\n%s", got, rec.String())
	}
	if direct := rec.directPaths(); len(direct) > 0 {
		t.Errorf("origin got requests without Via: %s: %q", proxyVia, direct)
	}
}

// TestHealthz asks the proxy for its own /healthz, in origin form.
func TestHealthz(t *testing.T) {
	t.Parallel()
	proxy := startProxy(t)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second} // no proxy
	t.Cleanup(client.CloseIdleConnections)
	resp := get(t, client, proxy.URL()+"/healthz")
	if resp.status != http.StatusOK {
		t.Errorf("GET %s/healthz status = %d, want 200; body %q", proxy.URL(), resp.status, resp.body)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

// get fetches url with client and reads the whole body.
func get(t *testing.T, client *http.Client, url string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}
