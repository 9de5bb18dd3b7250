package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stageproxy/stageproxy/cache"
)

// TestFillReservesCacheRoom: a body being filled counts against the cache
// from its first byte (so memory stays near cacheSize however many fills run
// at once): stored objects are evicted for it while it streams, and the
// reservation is gone once it is stored.
func TestFillReservesCacheRoom(t *testing.T) {
	const half = 64 << 10
	tests := []struct {
		name          string
		contentLength bool
		wantReserved  int64 // while the first half is out
	}{
		{"announced length", true, 2 * half},
		{"unknown length", false, reserveStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				if r.URL.Path == "/old" {
					io.WriteString(w, strings.Repeat("o", 1<<20))
					return
				}
				if tt.contentLength {
					w.Header().Set("Content-Length", fmt.Sprint(2*half))
				}
				io.WriteString(w, strings.Repeat("a", half))
				w.(http.Flusher).Flush()
				<-release
				io.WriteString(w, strings.Repeat("a", half))
			})
			// Room for /old or for the new body with a reserve step,
			// not for both.
			c, err := cache.New(cache.Config{MaxBytes: 1<<20 + 64<<10, MaxObjectBytes: 1<<20 + 64<<10})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			p := newTestProxy(t, Options{Cache: c})
			p.get(t, o.URL+"/old")
			if st := c.Stats(); st.Objects != 1 {
				t.Fatalf("after /old: %+v, want 1 object", st)
			}

			resp, err := p.client.Get(o.URL + "/new")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.ReadFull(resp.Body, make([]byte, half)); err != nil {
				t.Fatal(err)
			}
			// The first half has reached the client, so the fill has
			// read it and holds its reservation.
			st := c.Stats()
			if st.Reserved != tt.wantReserved || st.Objects != 0 || st.Evictions != 1 {
				t.Errorf("while filling: %+v, want Reserved %d, /old evicted", st, tt.wantReserved)
			}
			close(release)
			if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != half {
				t.Fatalf("rest of the body: %d bytes, %v", n, err)
			}
			// The client has every byte once they are written, which
			// can be before the fill stores them. The next request on
			// the same connection is read only after the first one's
			// handler returned, and that waits for the fill's end.
			resp.Body.Close()
			p.get(t, o.URL+"/new")
			if n := o.count("/new"); n != 1 {
				t.Errorf("origin saw %d requests for /new, want 1", n)
			}
			if st := c.Stats(); st.Reserved != 0 || st.Objects != 1 || st.Bytes < 2*half {
				t.Errorf("after the fill: %+v, want the body stored and nothing reserved", st)
			}
		})
	}
}
