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

// TestRevalidation304WithOtherETag: a 304 whose strong ETag the stored
// response does not have must not update it (RFC 9111 §4.3.4); the proxy
// fetches the object again instead of serving the old body under the new
// ETag.
func TestRevalidation304WithOtherETag(t *testing.T) {
	const lastModified = "Mon, 01 Jan 2024 00:00:00 GMT"
	var changed atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", lastModified)
		if !changed.Load() {
			// Validated on every use, by If-Modified-Since only.
			w.Header().Set("Cache-Control", "no-cache")
			w.Write([]byte("old body"))
			return
		}
		w.Header().Set("ETag", `"brand-new"`)
		w.Header().Set("Cache-Control", "max-age=100")
		if r.Header.Get("If-Modified-Since") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("new body"))
	})
	p := newTestProxy(t, Options{})
	p.get(t, o.URL+"/v")

	changed.Store(true)
	resp, body := p.get(t, o.URL+"/v")
	if body != "new body" || resp.Header.Get("Etag") != `"brand-new"` {
		t.Errorf("GET after the change = ETag %q body %q, want \"brand-new\" and the new body", resp.Header.Get("Etag"), body)
	}
	if r := o.lastRequest("/v"); r.Header.Get("If-Modified-Since") != "" {
		t.Errorf("last request to the origin had If-Modified-Since %q, want an unconditional GET", r.Header.Get("If-Modified-Since"))
	}
	if resp, body = p.get(t, o.URL+"/v"); body != "new body" || resp.Header.Get("Cache-Status") != statusHit {
		t.Errorf("next GET = Cache-Status %q body %q, want a hit on the new body", resp.Header.Get("Cache-Status"), body)
	}
}
