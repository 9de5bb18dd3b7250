package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// newTestH1 is an h1client dialing directly; with hide, its connections
// hide their socket, so that peekIdle cannot look at them.
func newTestH1(t *testing.T, hide bool) *h1client {
	t.Helper()
	d := &net.Dialer{}
	cl := &h1client{dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if hide && err == nil {
			c = struct{ net.Conn }{c}
		}
		return c, err
	}}
	t.Cleanup(cl.closeIdle)
	return cl
}

// h1get sends method target on cl and returns the status and body.
func h1get(t *testing.T, cl *h1client, method, target string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := cl.roundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// countingOrigin serves handler and counts the connections it accepted.
func countingOrigin(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// Every response that says where it ends leaves its connection for the
// next request.
func TestH1ClientReusesConnections(t *testing.T) {
	srv, conns := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			io.WriteString(w, "sized")
		case "/chunked":
			io.WriteString(w, "chun")
			w.(http.Flusher).Flush()
			io.WriteString(w, "ked")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/same":
			w.WriteHeader(http.StatusNotModified)
		}
	})
	cl := newTestH1(t, false)
	for _, tt := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/length", 200, "sized"},
		{"GET", "/chunked", 200, "chunked"},
		{"HEAD", "/length", 200, ""},
		{"GET", "/empty", 204, ""},
		{"GET", "/same", 304, ""},
		{"GET", "/length", 200, "sized"},
	} {
		status, body, err := h1get(t, cl, tt.method, srv.URL+tt.path)
		if err != nil || status != tt.status || body != tt.body {
			t.Fatalf("%s %s = %d %q, %v; want %d %q", tt.method, tt.path, status, body, err, tt.status, tt.body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("origin accepted %d connections, want 1 for all six requests", n)
	}
}

// A connection is not reused after a body left unread, or a response that
// asked to close.
func TestH1ClientClosesWhatItCannotReuse(t *testing.T) {
	srv, conns := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, strings.Repeat("x", 64<<10))
	})
	cl := newTestH1(t, false)

	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/abandoned", nil)
	resp, _, err := cl.roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // unread: the connection cannot carry another request
	for _, path := range []string{"/close", "/ok", "/ok"} {
		if status, body, err := h1get(t, cl, "GET", srv.URL+path); err != nil || status != 200 || len(body) != 64<<10 {
			t.Fatalf("GET %s = %d, %d bytes, %v", path, status, len(body), err)
		}
	}
	// /abandoned, /close, then one for both /ok.
	if n := conns.Load(); n != 3 {
		t.Errorf("origin accepted %d connections, want 3", n)
	}
}

// An idle connection the origin closed is replaced, whether the client sees
// that before sending (peekIdle) or only when the request fails (a retry).
func TestH1ClientReplacesAClosedIdleConnection(t *testing.T) {
	for _, hide := range []bool{false, true} {
		t.Run(fmt.Sprintf("socket hidden=%v", hide), func(t *testing.T) {
			closed := make(chan struct{}, 3)
			o := newRawOrigin(t, nil, func(c net.Conn, n int32) {
				// No "Connection: close": the client takes the
				// connection for reusable, then finds it closed.
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n%02d", n)
				c.Close()
				closed <- struct{}{}
			})
			cl := newTestH1(t, hide)
			var conns []*writeCounter
			if !hide {
				d := &net.Dialer{}
				cl.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := d.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					wc := &writeCounter{TCPConn: c.(*net.TCPConn)}
					conns = append(conns, wc)
					return wc, nil
				}
			}
			for i := 1; i <= 3; i++ {
				status, body, err := h1get(t, cl, "GET", o.URL+"/")
				if want := fmt.Sprintf("%02d", i); err != nil || status != 200 || body != want {
					t.Fatalf("GET %d = %d %q, %v; want 200 %q", i, status, body, err, want)
				}
				waitFor(t, closed, "the origin closing the connection")
			}
			// peekIdle saw each close: no request was written on a
			// closed connection (and sent again).
			for i, c := range conns {
				if n := c.writes.Load(); n != 1 {
					t.Errorf("connection %d carried %d request writes, want 1", i+1, n)
				}
			}
		})
	}
}

// writeCounter counts the writes on a TCP connection, which stays visible
// to peekIdle.
type writeCounter struct {
	*net.TCPConn
	writes atomic.Int32
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.TCPConn.Write(p)
}

// lateOrigin answers request n with the body fmt.Sprintf("%02d", n) and,
// once release is closed, sends junk on the first request's connection,
// then closes sent: bytes after a complete response.
func lateOrigin(t *testing.T, junk string) (o *rawOrigin, release chan<- struct{}, sent <-chan struct{}) {
	rel, done := make(chan struct{}), make(chan struct{})
	o = newRawOrigin(t, nil, func(c net.Conn, n int32) {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n%02d", n)
		if n != 1 {
			return
		}
		select {
		case <-rel:
			io.WriteString(c, junk)
			close(done)
		case <-t.Context().Done():
		}
	})
	return o, rel, done
}

// Bytes that arrive on an idle connection answer no request: the next
// request does not read them as its response.
func TestH1ClientDropsBytesSentToAnIdleConnection(t *testing.T) {
	o, release, sent := lateOrigin(t, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
	cl := newTestH1(t, false)
	if status, body, err := h1get(t, cl, "GET", o.URL+"/"); err != nil || status != 200 || body != "01" {
		t.Fatalf("first GET = %d %q, %v", status, body, err)
	}
	close(release)
	waitFor(t, sent, "bytes sent to the idle connection")
	if status, body, err := h1get(t, cl, "GET", o.URL+"/"); err != nil || status != 200 || body != "02" {
		t.Fatalf("GET after bytes on the idle connection = %d %q, %v; want 200 %q", status, body, err, "02")
	}
}

// A response head without end, or an endless run of interim responses, is
// an error rather than memory or time spent on it.
func TestH1ClientBoundsTheHead(t *testing.T) {
	for _, tt := range []struct {
		name, head, wantErr string
	}{
		{"huge head", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("y", 1000)+"\r\n", 1100), "response head larger than 1024 KiB"},
		{"endless 1xx", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", max1xx+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "more than 5 interim (1xx) responses"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newRawOrigin(t, nil, func(c net.Conn, _ int32) { io.WriteString(c, tt.head) })
			_, _, err := h1get(t, newTestH1(t, false), "GET", o.URL+"/")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("GET = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

// A request with a body is not sent again after a failure: its body is
// gone.
func TestH1ClientDoesNotResendABody(t *testing.T) {
	o := newRawOrigin(t, nil, func(c net.Conn, n int32) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close() // without saying so: the pooled connection is dead
	})
	cl := newTestH1(t, true) // peekIdle cannot tell: the request fails
	if status, _, err := h1get(t, cl, "GET", o.URL+"/"); err != nil || status != 200 {
		t.Fatalf("first GET = %d, %v", status, err)
	}
	// A body of unknown length: sent again, it would go out empty.
	body := io.MultiReader(strings.NewReader("body"))
	req, _ := http.NewRequestWithContext(t.Context(), "GET", o.URL+"/", body)
	if _, _, err := cl.roundTrip(req); err == nil {
		t.Error("GET with a body on a dead connection succeeded; want its failure, not a resend")
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1 (the body's request not sent again)", n)
	}
}
