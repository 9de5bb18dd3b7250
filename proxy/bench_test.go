package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stageproxy/stageproxy/cache"
)

// BenchmarkHit measures 4 KiB cache hits through a real socket, with the
// access log on as in production (to io.Discard).
func BenchmarkHit(b *testing.B) {
	body := strings.Repeat("x", 4096)
	o := newOrigin(&testing.T{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, body)
	})
	defer o.Close()
	c, _ := cache.New(cache.Config{MaxBytes: 64 << 20})
	defer c.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	h, _ := New(Options{Cache: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ListenAddrs: []string{ln.Addr().String()}})
	srv := NewServer(h, nil)
	go srv.Serve(WrapListener(ln))
	defer srv.Close()
	req := fmt.Sprintf("GET %s/obj HTTP/1.1\r\nHost: %s\r\n\r\n", o.URL, strings.TrimPrefix(o.URL, "http://"))
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for pb.Next() {
			io.WriteString(conn, req)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkMiss measures sequential 4 KiB misses (unique URLs) through a
// real socket, as the added-latency row of make bench does.
func BenchmarkMiss(b *testing.B) {
	body := strings.Repeat("x", 4096)
	o := newOrigin(&testing.T{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, body)
	})
	defer o.Close()
	c, _ := cache.New(cache.Config{MaxBytes: 256 << 20})
	defer c.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	h, _ := New(Options{Cache: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ListenAddrs: []string{ln.Addr().String()}})
	srv := NewServer(h, nil)
	go srv.Serve(WrapListener(ln))
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	host := strings.TrimPrefix(o.URL, "http://")
	for i := 0; b.Loop(); i++ {
		fmt.Fprintf(conn, "GET %s/miss/%d HTTP/1.1\r\nHost: %s\r\n\r\n", o.URL, i, host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
