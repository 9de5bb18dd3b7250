package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawOrigin answers the requests it reads on 127.0.0.1 with whatever bytes
// respond writes, so that it can break HTTP framing as no http.Server would.
type rawOrigin struct {
	URL      string
	requests atomic.Int32
}

// newRawOrigin serves respond, which is given the connection and the
// request's number (from 1, over all connections); with tlsConf, over TLS.
func newRawOrigin(t *testing.T, tlsConf *tls.Config, respond func(c net.Conn, n int32)) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{URL: "http://" + ln.Addr().String()}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		o.URL = "https://" + ln.Addr().String()
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool                  // protects: mu
		conns  = map[net.Conn]bool{} // protects: mu
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close()
			}
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					respond(c, o.requests.Add(1))
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return o
}

// warnings passes the warnings a Handler logs to a channel, dropping them
// when it is full rather than blocking the proxy.
type warnings chan slog.Record

func (w warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnings) Handle(_ context.Context, r slog.Record) error {
	select {
	case w <- r:
	default:
	}
	return nil
}
func (w warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnings) WithGroup(string) slog.Handler      { return w }

// wait returns once the warning msg about url has been logged, or reports
// an error when it is not within 10 s (the test goes on, to say what was
// stored).
func (w warnings) wait(t *testing.T, msg, url string) {
	t.Helper()
	guard := time.NewTimer(10 * time.Second)
	defer guard.Stop()
	for {
		select {
		case r := <-w:
			got := ""
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "url" {
					got = a.Value.String()
				}
				return true
			})
			if r.Message == msg && got == url {
				return
			}
		case <-guard.C:
			t.Errorf("no warning %q with url=%s within 10 s", msg, url)
			return
		}
	}
}

// TestBodyLongerThanContentLength: an origin that sends more bytes than its
// Content-Length announced has its response served as announced (the
// proxy reads no further) but never stored, whether the extra bytes come
// with the body or after the proxy stored it, over plain HTTP and over TLS
// (interception). Honest responses, with or without a 1xx before them, are
// stored.
func TestBodyLongerThanContentLength(t *testing.T) {
	const (
		head  = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\n"
		hints = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
	)
	tests := []struct {
		name   string
		first  string // written as one piece
		late   string // written once the first response is stored
		stored bool
	}{
		{"exact length", head + "hello", "", true},
		{"exact length after a 103", hints + head + "hello", "", true},
		{"extra bytes with the body", head + "hello world", "", false},
		{"extra bytes after a 103", hints + head + "hello world", "", false},
		{"extra bytes after a pause", head + "hello", " world", false},
	}
	for _, secure := range []bool{false, true} {
		scheme := map[bool]string{false: "http", true: "https"}[secure]
		for _, tt := range tests {
			t.Run(scheme+"/"+tt.name, func(t *testing.T) {
				release := make(chan struct{})
				var tlsConf *tls.Config
				opts := Options{}
				if secure {
					ca := newTestCA(t)
					leaf, err := ca.leaf("127.0.0.1")
					if err != nil {
						t.Fatal(err)
					}
					tlsConf = &tls.Config{Certificates: []tls.Certificate{*leaf}}
					opts.UpstreamRoots = ca.pool
					opts.Intercept = &Intercept{Match: func(h string) bool { return h == "127.0.0.1" }, Leaf: ca.leaf}
				}
				o := newRawOrigin(t, tlsConf, func(c net.Conn, n int32) {
					io.WriteString(c, tt.first)
					if tt.late == "" {
						return
					}
					select {
					case <-release:
						io.WriteString(c, tt.late)
					case <-t.Context().Done():
					}
				})
				warned := make(warnings, 64)
				opts.Logger = slog.New(warned)
				p := newTestProxy(t, opts)
				client := p.client
				if secure {
					client = p.httpsClient(t, opts.UpstreamRoots)
				}
				target := o.URL + "/pkg"

				if resp, body := fetch(t, client, target); body != "hello" || resp.StatusCode != http.StatusOK {
					t.Fatalf("first GET = %d %q, want 200 %q", resp.StatusCode, body, "hello")
				}
				if tt.late != "" {
					// Stored at first: the extra bytes have not come yet.
					// The same client connection serves this GET only
					// once the first one's handler, and so its store, is
					// done.
					if resp, _ := fetch(t, client, target); resp.Header.Get("Cache-Status") != statusHit {
						t.Fatalf("second GET before the extra bytes: Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
					}
					close(release)
				}
				if tt.stored {
					resp, body := fetch(t, client, target)
					if resp.Header.Get("Cache-Status") != statusHit || body != "hello" {
						t.Errorf("second GET: %q, Cache-Status %q, want a hit", body, resp.Header.Get("Cache-Status"))
					}
					if n := o.requests.Load(); n != 1 {
						t.Errorf("origin saw %d requests, want 1", n)
					}
					select {
					case r := <-warned:
						t.Errorf("warning %q for an honest response", r.Message)
					default:
					}
					return
				}

				warned.wait(t, msgTooLong, target)
				if st := p.cache.Stats(); st.Objects != 0 {
					t.Errorf("cache holds %d objects after the warning, want 0", st.Objects)
				}
				resp, body := fetch(t, client, target)
				if resp.Header.Get("Cache-Status") == statusHit || body != "hello" {
					t.Errorf("GET after the warning: %q, Cache-Status %q, want a miss", body, resp.Header.Get("Cache-Status"))
				}
				if n := o.requests.Load(); n != 2 {
					t.Errorf("origin saw %d requests, want 2 (nothing stored)", n)
				}
			})
		}
	}
}

// panickingUpstream panics while the fill looks up the parent for a request:
// a stand-in for a bug in the fill's head.
type panickingUpstream struct{}

func (panickingUpstream) ProxyURL(*http.Request) (*url.URL, error) { panic("test: bug in the fill") }
func (panickingUpstream) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("unused")
}
func (panickingUpstream) DialTunnel(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("unused")
}

// TestFillPanicFailsItsFlight: a fill that panics before its head is settled
// fails its flight. Left registered, the flight would hold every later
// request for the URL waiting on a head that never comes.
func TestFillPanicFailsItsFlight(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "fine")
	})
	p := newTestProxy(t, Options{})
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // net/http logs the recovered panic
	p.h.SetUpstream(panickingUpstream{}, "panicking")
	if resp, err := p.client.Get(o.URL + "/x"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET through the panicking fill: %s, want the connection dropped", resp.Status)
	}

	p.h.SetUpstream(nil, "")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a guard, not a synchronisation
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.URL+"/x", nil)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("GET after the panic: %v (waiting on the dead flight?)", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "fine" {
		t.Errorf("GET after the panic: %s %q, want the origin's body", resp.Status, b)
	}
}

// TestLargeBodyIntact: a stored body larger than the fill's first buffer
// (read straight into its final buffer once that has grown) reaches the
// client that started the fill, one that joined it, and a later hit byte for
// byte.
func TestLargeBodyIntact(t *testing.T) {
	body := make([]byte, 3<<20+12345)
	for i := range body {
		body[i] = byte(i*7 + i>>11) // no period the buffer sizes could hide
	}
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:100<<10])
		w.(http.Flusher).Flush()
		<-release // the joiner is in before the rest
		w.Write(body[100<<10:])
	})
	p := newTestProxy(t, Options{})
	starter, err := p.client.Get(o.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer starter.Body.Close()
	if _, err := io.ReadFull(starter.Body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	joinerIn := make(chan struct{})
	joinerDone := make(chan []byte, 1)
	go func() {
		defer close(joinerDone)
		resp, err := p.client.Get(o.URL + "/big")
		if err != nil {
			close(joinerIn)
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		first := make([]byte, 1)
		_, err = io.ReadFull(resp.Body, first)
		close(joinerIn) // it has bytes before the origin sent the rest: it joined
		rest, err2 := io.ReadAll(resp.Body)
		if err != nil || err2 != nil {
			t.Error(err, err2)
		}
		joinerDone <- append(first, rest...)
	}()
	<-joinerIn
	close(release)
	rest, err := io.ReadAll(starter.Body)
	if err != nil || !bytes.Equal(rest, body[1:]) {
		t.Errorf("starter: %d bytes, %v; want the body intact", 1+len(rest), err)
	}
	if b := <-joinerDone; !bytes.Equal(b, body) {
		t.Errorf("joiner: %d bytes, want the body intact", len(b))
	}
	resp, b := p.get(t, o.URL+"/big")
	if resp.Header.Get("Cache-Status") != statusHit || b != string(body) {
		t.Errorf("third GET: %q, %d bytes; want a hit with the body intact", resp.Header.Get("Cache-Status"), len(b))
	}
}
