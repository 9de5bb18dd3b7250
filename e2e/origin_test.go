//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// proxyVia is the Via element the proxy adds to every request it forwards
// (SPEC "On the wire"). An origin seeing it knows the request came through
// stageproxy and not straight from the client.
const proxyVia = "1.1 stageproxy"

// recorder counts the requests an origin receives, per path, and keeps a
// one-line summary of each for failure messages.
type recorder struct {
	mu     sync.Mutex     // protects counts, direct and lines
	counts map[string]int // requests per URL path
	direct []string       // paths of requests that lacked proxyVia
	lines  []string       // "GET /path -> 200 via=… cc=… inm=…"
}

// wrap returns h with every request recorded.
func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		via := r.Header.Values("Via")
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.counts == nil {
			rec.counts = make(map[string]int)
		}
		rec.counts[r.URL.Path]++
		if !hasVia(via, proxyVia) {
			rec.direct = append(rec.direct, r.URL.Path)
		}
		rec.lines = append(rec.lines, fmt.Sprintf("%s %s -> %d via=%q cache-control=%q if-none-match=%q accept=%q",
			r.Method, r.URL.RequestURI(), sw.status, strings.Join(via, ", "),
			r.Header.Get("Cache-Control"), r.Header.Get("If-None-Match"), r.Header.Get("Accept")))
	})
}

// hasVia reports whether one of the Via field lines lists want as an
// element (RFC 9110 §7.6.3: comma-separated "protocol received-by").
func hasVia(lines []string, want string) bool {
	for _, l := range lines {
		for e := range strings.SplitSeq(l, ",") {
			if strings.TrimSpace(e) == want {
				return true
			}
		}
	}
	return false
}

// snapshot returns a copy of the per-path counts.
func (rec *recorder) snapshot() map[string]int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return maps.Clone(rec.counts)
}

// count returns how many requests path has received.
func (rec *recorder) count(path string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.counts[path]
}

// wantServedOnce checks that the origin (named by what) served each of
// paths exactly once: the first install fetched every package file. It
// returns the counts, for wantNotServedSince after the second install.
func (rec *recorder) wantServedOnce(t *testing.T, what string, paths []string) map[string]int {
	t.Helper()
	snap := rec.snapshot()
	for _, p := range paths {
		if got := snap[p]; got != 1 {
			t.Errorf("round 1: %s served %s %d times, want 1", what, p, got)
		}
	}
	return snap
}

// wantNotServedSince checks that the origin served none of paths again
// after snap: the second install got every package file from the cache.
func (rec *recorder) wantNotServedSince(t *testing.T, what string, paths []string, snap map[string]int) {
	t.Helper()
	for _, p := range paths {
		if got := rec.count(p) - snap[p]; got != 0 {
			t.Errorf("round 2: %s served %s %d times, want 0 (a cache hit)", what, p, got)
		}
	}
}

// directPaths returns the paths of requests that did not come through the
// proxy.
func (rec *recorder) directPaths() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.direct)
}

// String is the request log, one request a line.
func (rec *recorder) String() string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return strings.Join(rec.lines, "\n")
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// newOrigin starts an origin on 127.0.0.1 behind a recorder. handler
// receives the origin's base URL ("http://127.0.0.1:PORT") before the first
// request can arrive, for documents that link to the origin itself.
func newOrigin(t *testing.T, handler func(baseURL string) http.Handler) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = rec.wrap(handler("http://" + srv.Listener.Addr().String()))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, rec
}
