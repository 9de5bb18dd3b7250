package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestCollapsedOnlyWhenReusable: a client that arrives while another's miss
// for the same URL is in flight may take that response only if the cache
// could have served it to this client without validation (RFC 9111 §4).
// Otherwise it gets its own, from the origin: never the first client's
// Set-Cookie or a body made for it.
func TestCollapsedOnlyWhenReusable(t *testing.T) {
	tests := []struct {
		name         string
		cacheControl string   // the origin's
		joinerHeader []string // the second client's request directives
		wantShared   bool
	}{
		{name: "fresh", cacheControl: "max-age=600", wantShared: true},
		{name: "no-cache", cacheControl: "no-cache"},
		{name: "max-age=0", cacheControl: "max-age=0"},
		{name: "max-age=0 must-revalidate", cacheControl: "max-age=0, must-revalidate"},
		{name: "no freshness", cacheControl: ""},
		{name: "qualified no-cache", cacheControl: `no-cache="Set-Cookie", max-age=60`},
		{name: "joiner max-age=0", cacheControl: "max-age=600", joinerHeader: []string{"Cache-Control", "max-age=0"}},
		{name: "joiner no-cache", cacheControl: "max-age=600", joinerHeader: []string{"Cache-Control", "no-cache"}},
		{name: "joiner Pragma no-cache", cacheControl: "max-age=600", joinerHeader: []string{"Pragma", "no-cache"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var first sync.Once
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.cacheControl != "" {
					w.Header().Set("Cache-Control", tt.cacheControl)
				}
				w.Header().Set("Set-Cookie", "session="+r.Header.Get("Cookie"))
				io.WriteString(w, "for "+r.Header.Get("Cookie")+";")
				held := false
				first.Do(func() { held = true })
				if held {
					// The first client's body ends only once the
					// second client has its response head.
					w.(http.Flusher).Flush()
					<-release
				}
				io.WriteString(w, " end")
			})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock)
			p := newTestProxy(t, Options{})

			get := func(hdr ...string) *http.Response {
				t.Helper()
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, o.URL+"/c", nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := p.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				return resp
			}
			// A's head is out, its body held upstream: its fill is in
			// flight when B asks.
			a := get("Cookie", "user=alice")
			b := get(append([]string{"Cookie", "user=bob"}, tt.joinerHeader...)...)
			bStatus, bCookie := b.Header.Get("Cache-Status"), b.Header.Get("Set-Cookie")
			unblock()
			aBody, errA := io.ReadAll(a.Body)
			bBody, errB := io.ReadAll(b.Body)
			if errA != nil || errB != nil {
				t.Fatalf("reading bodies: %v, %v", errA, errB)
			}
			if string(aBody) != "for user=alice; end" {
				t.Errorf("first client got %q", aBody)
			}

			collapsed := strings.HasSuffix(bStatus, "; collapsed")
			if tt.wantShared {
				if !collapsed || o.count("/c") != 1 {
					t.Errorf("second client: Cache-Status %q, origin asked %d times; want it collapsed into one request", bStatus, o.count("/c"))
				}
				return
			}
			if collapsed || bCookie != "session=user=bob" || string(bBody) != "for user=bob; end" {
				t.Errorf("second client got Cache-Status %q, Set-Cookie %q, body %q; want its own response", bStatus, bCookie, bBody)
			}
			if n := o.count("/c"); n != 2 {
				t.Errorf("origin asked %d times, want 2", n)
			}
		})
	}
}
