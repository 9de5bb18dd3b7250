// Package testparent provides parent proxies for tests, on 127.0.0.1: an
// HTTP parent that demands Basic credentials, relays absolute-form
// requests, opens CONNECT tunnels, and records what it saw.
package testparent

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// HTTP is an HTTP parent proxy. Its counters and records are safe to read
// while it serves.
type HTTP struct {
	// URL is http://ADDR; Addr is HOST:PORT.
	URL, Addr string
	// Relayed counts the absolute-form requests it forwarded; Connects the
	// tunnels it opened; Rejected the requests it answered 407.
	Relayed, Connects, Rejected atomic.Int32

	mu        sync.Mutex
	authSeen  []string // protects: the Proxy-Authorization values received
	connectTo []string // protects: the CONNECT targets
}

// NewHTTP starts an HTTP parent that accepts Proxy-Authorization: Basic
// user:pass and answers 407 to anything else. It passes response bytes on
// as they arrive, as a real parent does, and never forwards the
// Proxy-Authorization it received.
func NewHTTP(t testing.TB, user, pass string) *HTTP {
	t.Helper()
	p := &HTTP{}
	fwd := &http.Transport{Proxy: nil}
	t.Cleanup(fwd.CloseIdleConnections)
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Proxy-Authorization")
		p.mu.Lock()
		p.authSeen = append(p.authSeen, auth)
		p.mu.Unlock()
		if auth != want {
			p.Rejected.Add(1)
			w.Header().Set("Proxy-Authenticate", `Basic realm="parent"`)
			http.Error(w, "credentials", http.StatusProxyAuthRequired)
			return
		}
		if r.Method == http.MethodConnect {
			p.connect(w, r)
			return
		}
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		p.Relayed.Add(1)
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Authorization")
		resp, err := fwd.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			w.Write(buf[:n])
			w.(http.Flusher).Flush()
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	p.URL, p.Addr = srv.URL, srv.Listener.Addr().String()
	return p
}

func (p *HTTP) connect(w http.ResponseWriter, r *http.Request) {
	p.Connects.Add(1)
	p.mu.Lock()
	p.connectTo = append(p.connectTo, r.Host)
	p.mu.Unlock()
	target, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	client, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		target.Close()
		return
	}
	io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
	Pipe(client, target)
}

// Seen returns the Proxy-Authorization values and CONNECT targets received
// so far.
func (p *HTTP) Seen() (auth, connectTo []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.authSeen...), append([]string(nil), p.connectTo...)
}

// Pipe copies both ways until one side ends, then closes both.
func Pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}
