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
