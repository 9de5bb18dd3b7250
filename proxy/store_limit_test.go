package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stageproxy/stageproxy/cache"
)

// TestMaxObjectSizeIsTheLargestBodyStored: maxObjectSize bounds the body, so
// a body of up to exactly that many bytes is stored whatever its headers
// weigh, and "stored" is said only of what the cache then holds.
func TestMaxObjectSizeIsTheLargestBodyStored(t *testing.T) {
	const limit = 1000
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("X-Padding", strings.Repeat("p", 200)) // headers count against the cache, not the limit
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write([]byte(strings.Repeat("b", n)))
	})
	c, err := cache.New(cache.Config{MaxBytes: 64 << 20, MaxObjectBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := newTestProxy(t, Options{Cache: c, MaxObjectSize: limit})
	for _, n := range []int{800, 900, 999, limit, limit + 1} {
		u := fmt.Sprintf("%s/%d", o.URL, n)
		wantStored := n <= limit
		resp, _ := p.get(t, u)
		if said := strings.HasSuffix(resp.Header.Get("Cache-Status"), "; stored"); said != wantStored {
			t.Errorf("%d-byte body: first Cache-Status %q, want stored = %v", n, resp.Header.Get("Cache-Status"), wantStored)
		}
		resp, body := p.get(t, u)
		if hit := resp.Header.Get("Cache-Status") == statusHit; hit != wantStored || len(body) != n {
			t.Errorf("%d-byte body: second Cache-Status %q (%d bytes), want hit = %v", n, resp.Header.Get("Cache-Status"), len(body), wantStored)
		}
	}
}

// TestStoreRefusalIsLogged: an entry the cache refuses after "stored" was
// said (here, its headers make it larger than the whole cache) is logged
// with the reason.
func TestStoreRefusalIsLogged(t *testing.T) {
	const limit = 1000
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte(strings.Repeat("b", limit)))
	})
	c, err := cache.New(cache.Config{MaxBytes: limit, MaxObjectBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	records := make(chan slog.Record, 64)
	p := newTestProxy(t, Options{Cache: c, MaxObjectSize: limit, Logger: slog.New(recordHandler{records})})
	p.get(t, o.URL+"/x")
	// The store is tried before the body's end reaches the client, so
	// its record is already there.
	for {
		select {
		case r := <-records:
			if r.Message != "not stored" {
				continue
			}
			var logged error
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "err" {
					logged, _ = a.Value.Any().(error)
				}
				return true
			})
			if !errors.Is(logged, cache.ErrTooLarge) {
				t.Errorf("not stored: err = %v, want cache.ErrTooLarge", logged)
			}
			return
		default:
			t.Fatal(`no "not stored" record for an entry the cache refused`)
		}
	}
}
