package proxy

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// TestRevalidation5xxKeepsStored: a 5xx answer to a revalidation reaches the
// client (the entry may not be served stale), but the stored response stays:
// the next request revalidates it rather than fetching it whole (RFC 9111
// §4.3.3).
func TestRevalidation5xxKeepsStored(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down for a moment", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "no-cache") // validated on every use, never served stale
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("body v1"))
	})
	p := newTestProxy(t, Options{ServeStaleOnError: true})
	p.get(t, o.URL+"/x")

	failing.Store(true)
	if resp, _ := p.get(t, o.URL+"/x"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET during the outage = %d, want the origin's 503", resp.StatusCode)
	}

	failing.Store(false)
	resp, body := p.get(t, o.URL+"/x")
	if got, want := resp.Header.Get("Cache-Status"), "stageproxy; fwd=stale; fwd-status=304"; got != want || body != "body v1" {
		t.Errorf("GET after the outage: Cache-Status %q body %q, want %q and the stored body", got, body, want)
	}
	if inm := o.lastRequest("/x").Header.Get("If-None-Match"); inm != `"v1"` {
		t.Errorf("request after the outage sent If-None-Match %q, want \"v1\" (the stored response was dropped)", inm)
	}
}
