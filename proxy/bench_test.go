package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stageproxy/stageproxy/cache"
)

// benchProxy starts an origin of cacheable 4 KiB objects and the proxy on
// real sockets, with the access log on as in production (to io.Discard).
// It returns the proxy's address and the origin's URL.
func benchProxy(b *testing.B) (proxyAddr, originURL string) {
	b.Helper()
	body := strings.Repeat("x", 4096)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	c, err := cache.New(cache.Config{MaxBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(Options{Cache: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ListenAddrs: []string{ln.Addr().String()}})
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(h, nil)
	go srv.Serve(WrapListener(ln))
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), o.URL
}

// exchange sends one request on conn and reads the whole response.
func exchange(b *testing.B, conn net.Conn, br *bufio.Reader, req string) {
	if _, err := io.WriteString(conn, req); err != nil {
		b.Error(err)
		return
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// BenchmarkHit measures 4 KiB cache hits, from parallel keep-alive
// connections.
func BenchmarkHit(b *testing.B) {
	proxyAddr, originURL := benchProxy(b)
	req := fmt.Sprintf("GET %s/obj HTTP/1.1\r\nHost: %s\r\n\r\n", originURL, strings.TrimPrefix(originURL, "http://"))
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", proxyAddr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for pb.Next() {
			exchange(b, conn, br, req)
		}
	})
}

// BenchmarkMiss measures sequential 4 KiB misses (unique URLs), as the
// added-latency row of make bench does.
func BenchmarkMiss(b *testing.B) {
	proxyAddr, originURL := benchProxy(b)
	conn, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	host := strings.TrimPrefix(originURL, "http://")
	for i := 0; b.Loop(); i++ {
		exchange(b, conn, br, fmt.Sprintf("GET %s/miss/%d HTTP/1.1\r\nHost: %s\r\n\r\n", originURL, i, host))
	}
}
