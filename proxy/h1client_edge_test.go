package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// guard bounds every wait in these tests: reaching it is a failure, never
// a synchronisation.
const guard = 10 * time.Second

// waitFor fails t unless ch is closed (or sends) within guard.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("no %s within %v", what, guard)
	}
}

// scriptedOrigin answers request n with script[n-1] (closing the connection
// after it when the script says so) and counts the connections that carried
// a request.
type scriptedOrigin struct {
	*rawOrigin
	mu    sync.Mutex
	conns map[net.Conn]bool // protects: mu
}

type scripted struct {
	resp  string
	close bool
}

func newScriptedOrigin(t *testing.T, script []scripted) *scriptedOrigin {
	t.Helper()
	o := &scriptedOrigin{conns: map[net.Conn]bool{}}
	o.rawOrigin = newRawOrigin(t, nil, func(c net.Conn, n int32) {
		o.mu.Lock()
		o.conns[c] = true
		o.mu.Unlock()
		if int(n) > len(script) {
			io.WriteString(c, "HTTP/1.1 500 Unscripted\r\nContent-Length: 0\r\n\r\n")
			return
		}
		s := script[n-1]
		io.WriteString(c, s.resp)
		if s.close {
			c.Close()
		}
	})
	return o
}

func (o *scriptedOrigin) connCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.conns)
}

// checkPool reports a pool whose counters disagree with its contents.
func checkPool(t *testing.T, cl *h1client) (nidle int) {
	t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	sum := 0
	seen := map[*h1conn]bool{}
	for key, conns := range cl.idle {
		sum += len(conns)
		if len(conns) > maxIdlePerKey {
			t.Errorf("idle[%q] holds %d connections, over maxIdlePerKey %d", key, len(conns), maxIdlePerKey)
		}
		for _, pc := range conns {
			if pc == nil || !pc.inPool || pc.key != key || seen[pc] {
				t.Errorf("idle[%q] holds a bad entry (nil, not inPool, wrong key or twice)", key)
				continue
			}
			seen[pc] = true
		}
	}
	if sum != cl.nidle || cl.nidle > maxIdle || cl.nidle < 0 {
		t.Errorf("nidle = %d, idle holds %d connections (maxIdle %d)", cl.nidle, sum, maxIdle)
	}
	return cl.nidle
}

// Responses whose framing is unusual are read as RFC 9112 §6.3 says, and
// the connection is kept only when the response said where it ended.
func TestH1EdgeFraming(t *testing.T) {
	type step struct {
		method string
		reply  scripted
		status int
		body   string
	}
	ok := func(body string) step {
		return step{"GET", scripted{resp: fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)}, 200, body}
	}
	tests := []struct {
		name  string
		steps []step
		conns int // 0: not checked
	}{
		{"chunked with trailers, then reuse", []step{
			{"GET", scripted{resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"}, 200, "hello"},
			ok("next"),
		}, 1},
		{"HEAD with Content-Length, then reuse", []step{
			{"HEAD", scripted{resp: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"}, 200, ""},
			ok("next"),
		}, 1},
		{"HEAD with Transfer-Encoding, then reuse", []step{
			{"HEAD", scripted{resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"}, 200, ""},
			ok("next"),
		}, 1},
		{"HEAD answered with a body", []step{
			{"HEAD", scripted{resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"}, 200, ""},
			ok("next"),
		}, 2},
		{"204 with a stray byte", []step{
			{"GET", scripted{resp: "HTTP/1.1 204 No Content\r\n\r\nX"}, 204, ""},
			ok("next"),
		}, 2},
		{"304 with a stray byte", []step{
			{"GET", scripted{resp: "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\nX"}, 304, ""},
			ok("next"),
		}, 2},
		{"chunked and Content-Length", []step{
			{"GET", scripted{resp: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"}, 200, "hello"},
			ok("next"),
		}, 0},
		{"HTTP/1.0 to the close", []step{
			{"GET", scripted{resp: "HTTP/1.0 200 OK\r\n\r\nuntil close", close: true}, 200, "until close"},
			ok("next"),
		}, 2},
		{"HTTP/1.0 keep-alive", []step{
			{"GET", scripted{resp: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nka"}, 200, "ka"},
			ok("next"),
		}, 1},
		{"HTTP/1.0 sized, no keep-alive", []step{
			{"GET", scripted{resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nno"}, 200, "no"},
			ok("next"),
		}, 2},
		{"Connection: close left open", []step{
			{"GET", scripted{resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nby"}, 200, "by"},
			ok("next"),
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var script []scripted
			for _, s := range tt.steps {
				script = append(script, s.reply)
			}
			o := newScriptedOrigin(t, script)
			cl := newTestH1(t, false)
			for i, s := range tt.steps {
				req, _ := http.NewRequestWithContext(t.Context(), s.method, o.URL+"/", nil)
				resp, _, err := cl.roundTrip(req)
				if err != nil {
					t.Fatalf("step %d: %s = %v", i+1, s.method, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != s.status || string(b) != s.body {
					t.Fatalf("step %d: %s = %d %q, %v; want %d %q", i+1, s.method, resp.StatusCode, b, err, s.status, s.body)
				}
				if strings.Contains(s.reply.resp, "X-Sum") && resp.Trailer.Get("X-Sum") != "42" {
					t.Errorf("step %d: trailer X-Sum = %q, want %q", i+1, resp.Trailer.Get("X-Sum"), "42")
				}
			}
			if n := o.connCount(); tt.conns != 0 && n != tt.conns {
				t.Errorf("origin carried the %d requests on %d connections, want %d", len(tt.steps), n, tt.conns)
			}
			checkPool(t, cl)
		})
	}
}

// An origin that closes in the middle of a body fails the read, and the
// connection does not go back to the pool.
func TestH1EdgeOriginClosesMidBody(t *testing.T) {
	o := newScriptedOrigin(t, []scripted{
		{resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!", close: true},
		{resp: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"},
	})
	cl := newTestH1(t, false)
	if _, body, err := h1get(t, cl, "GET", o.URL+"/"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("GET cut short = %q, %v; want %v", body, err, io.ErrUnexpectedEOF)
	}
	if n := checkPool(t, cl); n != 0 {
		t.Errorf("%d idle connections after a body cut short, want 0", n)
	}
	if status, body, err := h1get(t, cl, "GET", o.URL+"/"); err != nil || status != 200 || body != "next" {
		t.Fatalf("GET after = %d %q, %v", status, body, err)
	}
}

// Cancelling the request's context ends a wait for the head or the body at
// once, and closes the connection.
func TestH1EdgeCancel(t *testing.T) {
	for _, whileBody := range []bool{false, true} {
		t.Run(map[bool]string{false: "waiting for the head", true: "reading the body"}[whileBody], func(t *testing.T) {
			asked, gone := make(chan struct{}), make(chan struct{})
			o := newRawOrigin(t, nil, func(c net.Conn, _ int32) {
				if whileBody {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
				}
				close(asked)
				io.Copy(io.Discard, c) // until the client closes
				close(gone)
			})
			cl := newTestH1(t, false)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", o.URL+"/", nil)
			type result struct {
				resp *http.Response
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, _, err := cl.roundTrip(req)
				done <- result{resp, err}
			}()
			waitFor(t, asked, "request at the origin")
			if !whileBody {
				cancel()
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(guard):
				t.Fatalf("roundTrip still waiting %v after the cancel", guard)
			}
			if !whileBody {
				if !errors.Is(r.err, context.Canceled) {
					t.Fatalf("roundTrip = %v, want %v", r.err, context.Canceled)
				}
			} else {
				if r.err != nil {
					t.Fatal(r.err)
				}
				if _, err := io.ReadFull(r.resp.Body, make([]byte, 10)); err != nil {
					t.Fatal(err)
				}
				cancel()
				readErr := make(chan error, 1)
				go func() {
					_, err := r.resp.Body.Read(make([]byte, 10))
					readErr <- err
				}()
				select {
				case err := <-readErr:
					if err == nil {
						t.Fatal("body Read after the cancel succeeded, want an error")
					}
				case <-time.After(guard):
					t.Fatalf("body Read still blocked %v after the cancel", guard)
				}
				r.resp.Body.Close()
			}
			waitFor(t, gone, "close of the connection at the origin")
			if n := checkPool(t, cl); n != 0 {
				t.Errorf("%d idle connections after the cancel, want 0", n)
			}
		})
	}
}

// edgeConn is a client connection with test hooks. It embeds net.Conn on
// purpose: it is a net.Conn with a different Read and SetReadDeadline.
type edgeConn struct {
	net.Conn
	// short turns the long read deadlines the client sets
	// (responseHeaderTimeout) into 50 ms ones.
	short bool
	// gate, when set, holds each Read until a read deadline in the past
	// is set: a watcher goroutine that the scheduler has not run yet when
	// the next request takes its connection.
	gate     atomic.Pointer[chan struct{}]
	gateOnce sync.Once
}

// SyscallConn keeps the socket visible to peekIdle.
func (c *edgeConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *edgeConn) Read(p []byte) (int, error) {
	if g := c.gate.Load(); g != nil {
		select {
		case <-*g:
		case <-time.After(guard):
		}
	}
	return c.Conn.Read(p)
}

func (c *edgeConn) SetReadDeadline(d time.Time) error {
	if c.short && d.After(time.Now().Add(time.Second)) {
		d = time.Now().Add(50 * time.Millisecond)
	}
	err := c.Conn.SetReadDeadline(d)
	if g := c.gate.Load(); g != nil && !d.IsZero() && d.Before(time.Now()) {
		c.gateOnce.Do(func() { close(*g) })
	}
	return err
}

// newEdgeH1 is an h1client whose connections are edgeConns, sent on conns
// as they are dialed.
func newEdgeH1(t *testing.T, short bool, conns chan<- *edgeConn) *h1client {
	t.Helper()
	d := &net.Dialer{}
	cl := &h1client{dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ec := &edgeConn{Conn: c, short: short}
		if conns != nil {
			conns <- ec
		}
		return ec, nil
	}}
	t.Cleanup(cl.closeIdle)
	return cl
}

// A head that does not come within responseHeaderTimeout is a timeout (a
// 504 for the client), on a reused connection too, and is not sent again.
// The client's 60 s deadlines are cut to 50 ms by the connection.
func TestH1EdgeResponseHeaderTimeout(t *testing.T) {
	gone := make(chan struct{})
	o := newRawOrigin(t, nil, func(c net.Conn, n int32) {
		if n == 1 {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return
		}
		io.Copy(io.Discard, c) // no answer: until the client closes
		close(gone)
	})
	cl := newEdgeH1(t, true, nil)
	if status, body, err := h1get(t, cl, "GET", o.URL+"/"); err != nil || status != 200 || body != "ok" {
		t.Fatalf("first GET = %d %q, %v", status, body, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer time.AfterFunc(guard, cancel).Stop() // a guard: Canceled is not a timeout
	req, _ := http.NewRequestWithContext(ctx, "GET", o.URL+"/", nil)
	_, _, err := cl.roundTrip(req)
	if !isTimeout(err) || errors.Is(err, context.Canceled) {
		t.Fatalf("GET with no head = %v, want a timeout", err)
	}
	waitFor(t, gone, "close of the connection at the origin")
	if n := o.requests.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (no resend after a timeout)", n)
	}
}

// Many goroutines sharing the pool leave its counters in step with its
// contents, whatever the responses and whether bodies are read, abandoned
// or watched.
func TestH1EdgeConcurrentPool(t *testing.T) {
	srv, conns := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			io.WriteString(w, "chun")
			w.(http.Flusher).Flush()
			io.WriteString(w, "ked")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			io.WriteString(w, strings.Repeat("s", 3000))
		}
	})
	cl := newTestH1(t, false)
	const workers, rounds = 32, 25
	var late atomic.Int32
	stop := make(chan struct{})
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		for i := 0; i < 1_000_000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			checkPool(t, cl)
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				method, path := "GET", []string{"/sized", "/chunked", "/empty"}[(w+i)%3]
				if (w+i)%5 == 0 {
					method = "HEAD"
				}
				req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
				resp, ex, err := cl.roundTrip(req)
				if err != nil {
					t.Errorf("%s %s: %v", method, path, err)
					return
				}
				if (w*rounds+i)%7 == 0 {
					resp.Body.Close() // abandoned: closed, not pooled
					continue
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					t.Errorf("%s %s body: %v", method, path, err)
				}
				resp.Body.Close()
				if i%2 == 0 {
					ex.watch(func() { late.Add(1) })
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-checked
	if n := checkPool(t, cl); n > workers {
		t.Errorf("%d idle connections after %d workers, want at most %d", n, workers, workers)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("late called %d times for an origin that sent nothing extra", n)
	}
	t.Logf("origin accepted %d connections for %d requests", conns.Load(), workers*rounds)
}

// closeIdle closes the idle connections, and those in flight once their
// exchange ends; a request after it still works, on a connection closed
// after it.
func TestH1EdgeCloseIdleInFlight(t *testing.T) {
	release := make(chan struct{})
	var opened, closed atomic.Int32
	allClosed := make(chan struct{})
	const total = 5 // 3 in flight, 1 idle, 1 after closeIdle
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8")
		if r.URL.Path == "/slow" {
			io.WriteString(w, "slow")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "body")
			return
		}
		io.WriteString(w, "quickone")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			if closed.Add(1) == total {
				close(allClosed)
			}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cl := newTestH1(t, false)

	var bodies []io.ReadCloser
	for range 3 {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/slow", nil)
		resp, _, err := cl.roundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	if status, body, err := h1get(t, cl, "GET", srv.URL+"/quick"); err != nil || status != 200 || body != "quickone" {
		t.Fatalf("GET /quick = %d %q, %v", status, body, err)
	}
	if n := checkPool(t, cl); n != 1 {
		t.Fatalf("%d idle connections before closeIdle, want 1", n)
	}
	cl.closeIdle()
	close(release)
	for i, b := range bodies {
		if got, err := io.ReadAll(b); err != nil || string(got) != "slowbody" {
			t.Errorf("body %d = %q, %v", i, got, err)
		}
		b.Close()
	}
	if status, body, err := h1get(t, cl, "GET", srv.URL+"/quick"); err != nil || status != 200 || body != "quickone" {
		t.Fatalf("GET /quick after closeIdle = %d %q, %v", status, body, err)
	}
	if n := checkPool(t, cl); n != 0 {
		t.Errorf("%d idle connections after closeIdle, want 0", n)
	}
	select {
	case <-allClosed:
	case <-time.After(guard):
		t.Fatalf("origin saw %d of %d connections closed", closed.Load(), opened.Load())
	}
	if n := opened.Load(); n != total {
		t.Errorf("origin accepted %d connections, want %d", n, total)
	}
}

// A watched connection is taken by the next request at once: no deadlock,
// the request succeeds on it, and late is not called.
func TestH1EdgeWatchedConnectionReused(t *testing.T) {
	srv, conns := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sized")
	})
	cl := newTestH1(t, false)
	var late atomic.Int32
	for i := range 20 {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/", nil)
		resp, ex, err := cl.roundTrip(req)
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "sized" {
			t.Fatalf("GET %d = %q, %v", i, b, err)
		}
		ex.watch(func() { late.Add(1) })
		ex.watch(func() { late.Add(1) }) // a second watch is a no-op
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("origin accepted %d connections, want 1", n)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("late called %d times, want 0", n)
	}
}

// Bytes that arrive on a watched idle connection call late exactly once and
// retire the connection; the next request gets its own response on a new
// connection. "taken first" is the next request taking the connection
// before the watcher goroutine has run: the watcher's read is held (by the
// connection) until the taker's deadline stops it, as when the scheduler
// has not yet run it.
func TestH1EdgeWatchLateBytes(t *testing.T) {
	for _, takenFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "watcher first", true: "taken first"}[takenFirst], func(t *testing.T) {
			o, release, sent := lateOrigin(t, "garbage")
			dialed := make(chan *edgeConn, 4)
			cl := newEdgeH1(t, false, dialed)
			req, _ := http.NewRequestWithContext(t.Context(), "GET", o.URL+"/", nil)
			resp, ex, err := cl.roundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "01" {
				t.Fatalf("first GET = %q, %v", b, err)
			}
			if takenFirst {
				g := make(chan struct{})
				(<-dialed).gate.Store(&g)
			}
			var late atomic.Int32
			called := make(chan struct{})
			ex.watch(func() {
				if late.Add(1) == 1 {
					close(called)
				}
			})
			close(release)
			waitFor(t, sent, "garbage sent")
			if !takenFirst {
				waitFor(t, called, "late call")
			}
			if status, body, err := h1get(t, cl, "GET", o.URL+"/"); err != nil || status != 200 || body != "02" {
				t.Fatalf("GET after the late bytes = %d %q, %v; want 200 %q", status, body, err, "02")
			}
			if takenFirst {
				waitFor(t, called, "late call")
			}
			if n := late.Load(); n != 1 {
				t.Errorf("late called %d times, want 1", n)
			}
		})
	}
}

// maxAttempts bounds the pooled connections a request tries before one it
// dials: with more dead idle connections than that, which the client cannot
// see closed (a socket hidden by a wrapper, as SOCKS dialers return), the
// request still succeeds.
func TestH1EdgeManyDeadIdleConnections(t *testing.T) {
	o := newRawOrigin(t, nil, func(c net.Conn, n int32) {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n%02d", n)
		c.Close() // without saying so
	})
	cl := newTestH1(t, true)
	var bodies []io.ReadCloser
	for range maxAttempts {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", o.URL+"/", nil)
		resp, _, err := cl.roundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	for _, b := range bodies {
		if _, err := io.ReadAll(b); err != nil {
			t.Fatal(err)
		}
	}
	if n := checkPool(t, cl); n != maxAttempts {
		t.Fatalf("%d idle connections, want %d", n, maxAttempts)
	}
	if status, body, err := h1get(t, cl, "GET", o.URL+"/"); err != nil || status != 200 {
		t.Fatalf("GET with %d dead idle connections = %d %q, %v; want 200 on a new connection", maxAttempts, status, body, err)
	}
}

// A connection that leaves the pool leaves nothing behind: no map entry for
// its key and no pointer to it (with its 8 KiB of buffers) in the slice's
// spare capacity. A forward proxy meets an open-ended set of origins.
func TestH1EdgePoolForgetsRetiredConnections(t *testing.T) {
	srv, _ := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	cl := newTestH1(t, false)
	if _, _, err := h1get(t, cl, "GET", srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	cl.mu.Lock()
	var pc *h1conn
	for _, conns := range cl.idle {
		pc = conns[0]
	}
	cl.mu.Unlock()
	cl.expire(pc) // what its idle timer does after idleConnTimeout

	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.idle) != 0 {
		t.Errorf("idle keeps %d keys after its last connection expired, want 0", len(cl.idle))
	}
	for key, conns := range cl.idle {
		for _, c := range conns[:cap(conns)] {
			if c != nil {
				t.Errorf("idle[%q] still points at a retired connection in its spare capacity", key)
			}
		}
	}
}

// Bytes past Content-Length that reach the client inside the TLS record
// that ends the body wait in the tls.Conn, not in the connection's buffer
// nor on the socket: the exchange must still report the excess, and the
// next request must not read them as its response.
func TestH1EdgeExcessInsideTLSRecord(t *testing.T) {
	ca := newTestCA(t)
	leaf, err := ca.leaf("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// One record for the whole write, so that the client decrypts the
	// extra bytes along with the end of the body.
	srvConf := &tls.Config{Certificates: []tls.Certificate{*leaf}, DynamicRecordSizingDisabled: true}
	body := strings.Repeat("b", 12000)
	o := newRawOrigin(t, srvConf, func(c net.Conn, n int32) {
		if n == 1 {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 12000\r\n\r\n"+body+
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n%02d", n)
	})
	d := &net.Dialer{}
	cl := &h1client{dialTLS: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}}
	t.Cleanup(cl.closeIdle)

	req, _ := http.NewRequestWithContext(t.Context(), "GET", o.URL+"/", nil)
	resp, ex, err := cl.roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	// As a fill does: one read into a buffer of the announced size.
	buf := make([]byte, 12000)
	if n, err := io.ReadFull(resp.Body, buf); err != nil || string(buf[:n]) != body {
		t.Fatalf("first body: %d bytes, %v", n, err)
	}
	if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read past the body = %d, %v; want 0, EOF", n, err)
	}
	resp.Body.Close()
	if !ex.excess() {
		t.Errorf("excess() = false after a body followed by 45 more bytes in its TLS record, want true")
	}
	status, got, err := h1get(t, cl, "GET", o.URL+"/")
	if err != nil || status != 200 || got != "02" {
		t.Errorf("next GET = %d %q, %v; want 200 %q (its own response)", status, got, err, "02")
	}
}
