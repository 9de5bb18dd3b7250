package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stageproxy/stageproxy/cache"
)

// testProxy is a proxy under test, served on 127.0.0.1 like the real one.
type testProxy struct {
	h      *Handler
	srv    *httptest.Server
	url    *url.URL
	client *http.Client
	cache  *cache.Cache
}

func newTestProxy(t *testing.T, opts Options) *testProxy {
	t.Helper()
	if opts.Cache == nil {
		c, err := cache.New(cache.Config{MaxBytes: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		opts.Cache = c
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.ListenAddrs = append(opts.ListenAddrs, ln.Addr().String())
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = WrapListener(ln)
	srv.Config = NewServer(h, opts.Logger)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	u, _ := url.Parse(srv.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &testProxy{h: h, srv: srv, url: u, cache: opts.Cache, client: &http.Client{Transport: tr}}
}

// get fetches target through the proxy and returns the response with its
// body read.
func (p *testProxy) get(t *testing.T, target string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return fetch(t, p.client, target, hdr...)
}

// fetch GETs target with client, the request headers given as name, value
// pairs, and returns the response with its body read.
func fetch(t *testing.T, client *http.Client, target string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", target, err)
	}
	return resp, string(b)
}

// origin is a test origin that counts the requests it serves by path.
type origin struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	last   map[string]*http.Request
}

func newOrigin(t *testing.T, handler http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{counts: map[string]int{}, last: map[string]*http.Request{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.counts[r.URL.Path]++
		o.last[r.URL.Path] = r
		o.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) port() string { return o.URL[strings.LastIndex(o.URL, ":")+1:] }

func (o *origin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

func (o *origin) lastRequest(path string) *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last[path]
}

func TestSecondFetchIsAHit(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300, public")
		w.Header().Set("ETag", `"v1"`)
		fmt.Fprint(w, "hello "+r.URL.Path)
	})
	p := newTestProxy(t, Options{})
	resp, body := p.get(t, o.URL+"/a")
	if body != "hello /a" || resp.StatusCode != 200 {
		t.Fatalf("first GET = %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Cache-Status"); got != "stageproxy; fwd=uri-miss; fwd-status=200; stored" {
		t.Errorf("first Cache-Status = %q", got)
	}
	if got := resp.Header.Get("Via"); got != "1.1 stageproxy" {
		t.Errorf("Via = %q, want 1.1 stageproxy", got)
	}
	for i := range 200 {
		resp, body = p.get(t, o.URL+"/a")
		if got := resp.Header.Get("Cache-Status"); got != "stageproxy; hit" || body != "hello /a" {
			t.Fatalf("fetch %d: Cache-Status %q body %q, want a hit", i+2, got, body)
		}
	}
	if resp.Header.Get("Age") == "" || resp.ContentLength != int64(len("hello /a")) {
		t.Errorf("hit: Age %q Content-Length %d", resp.Header.Get("Age"), resp.ContentLength)
	}
	if n := o.count("/a"); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	if r := o.lastRequest("/a"); r.Header.Get("Via") != "1.1 stageproxy" {
		t.Errorf("origin saw Via %q", r.Header.Get("Via"))
	}
}

// TestFetchedOnceThenAHit is the promise of the product: for many distinct
// URLs fetched one after the other, every second fetch is a hit.
func TestFetchedOnceThenAHit(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write([]byte(strings.Repeat("x", 4096)))
	})
	p := newTestProxy(t, Options{})
	for i := range 300 {
		u := fmt.Sprintf("%s/obj/%d", o.URL, i)
		p.get(t, u)
		if resp, _ := p.get(t, u); resp.Header.Get("Cache-Status") != statusHit {
			t.Fatalf("%s: second fetch Cache-Status %q, want a hit", u, resp.Header.Get("Cache-Status"))
		}
	}
}

func TestRevalidation(t *testing.T) {
	var version atomic.Value
	version.Store("v1")
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		etag := `"` + version.Load().(string) + `"`
		w.Header().Set("Cache-Control", "max-age=600, public")
		w.Header().Set("ETag", etag)
		w.Header().Set("X-Served", version.Load().(string))
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body "+version.Load().(string))
	})
	p := newTestProxy(t, Options{})
	p.get(t, o.URL+"/simple/pkg/")

	// pip sends max-age=0 on index pages: the proxy must revalidate, and
	// a 304 is served from the cache with the merged headers.
	resp, body := p.get(t, o.URL+"/simple/pkg/", "Cache-Control", "max-age=0")
	if got := resp.Header.Get("Cache-Status"); got != "stageproxy; fwd=request; fwd-status=304" || body != "body v1" {
		t.Errorf("revalidated: Cache-Status %q body %q", got, body)
	}
	if r := o.lastRequest("/simple/pkg/"); r.Header.Get("If-None-Match") != `"v1"` {
		t.Errorf("revalidation sent If-None-Match %q, want \"v1\"", r.Header.Get("If-None-Match"))
	}
	// The client's own conditional request is answered 304 from the cache.
	req, _ := http.NewRequest(http.MethodGet, o.URL+"/simple/pkg/", nil)
	req.Header.Set("If-None-Match", `"v1"`)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("Cache-Status") != statusHit {
		t.Errorf("client conditional: %d %q, want 304 hit", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	// A changed page replaces the stored one.
	version.Store("v2")
	resp, body = p.get(t, o.URL+"/simple/pkg/", "Cache-Control", "no-cache")
	if body != "body v2" || resp.Header.Get("Cache-Status") != "stageproxy; fwd=request; fwd-status=200; stored" {
		t.Errorf("changed: %q %q", resp.Header.Get("Cache-Status"), body)
	}
	if resp, body = p.get(t, o.URL+"/simple/pkg/"); body != "body v2" || resp.Header.Get("Cache-Status") != statusHit {
		t.Errorf("after change: %q %q, want hit with v2", resp.Header.Get("Cache-Status"), body)
	}
	if n := o.count("/simple/pkg/"); n != 3 {
		t.Errorf("origin saw %d requests, want 3", n)
	}
}

func TestVary(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Vary", "Accept-Encoding, Accept")
		fmt.Fprint(w, "for "+r.Header.Get("Accept"))
	})
	p := newTestProxy(t, Options{})
	corgi := "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
	full := "application/json"
	for round := range 2 {
		for _, accept := range []string{corgi, full} {
			resp, body := p.get(t, o.URL+"/pkg", "Accept", accept)
			if body != "for "+accept {
				t.Fatalf("round %d Accept %q: body %q", round, accept, body)
			}
			hit := resp.Header.Get("Cache-Status") == statusHit
			if hit != (round == 1) {
				t.Errorf("round %d Accept %q: Cache-Status %q", round, accept, resp.Header.Get("Cache-Status"))
			}
		}
	}
	if n := o.count("/pkg"); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (one per variant)", n)
	}
}

func TestNotStored(t *testing.T) {
	tests := []struct {
		name    string
		reqHdr  []string
		handler http.HandlerFunc
	}{
		{"no-store", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, "x")
		}},
		{"private", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "private, max-age=60")
			fmt.Fprint(w, "x")
		}},
		{"authorization", []string{"Authorization", "Bearer t"}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "x")
		}},
		{"cut short", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("only ten b"))
			panic(http.ErrAbortHandler) // close the connection mid-body
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, tt.handler)
			p := newTestProxy(t, Options{})
			for range 2 {
				req, _ := http.NewRequest(http.MethodGet, o.URL+"/x", nil)
				for i := 0; i+1 < len(tt.reqHdr); i += 2 {
					req.Header.Set(tt.reqHdr[i], tt.reqHdr[i+1])
				}
				if resp, err := p.client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			if n := o.count("/x"); n != 2 {
				t.Errorf("origin saw %d requests, want 2 (nothing stored)", n)
			}
			if st := p.cache.Stats(); st.Objects != 0 {
				t.Errorf("cache holds %d objects, want 0", st.Objects)
			}
		})
	}
}

// TestCoalescing: 30 clients ask for one object at once; the origin is
// asked once, and every client receives bytes before the object is
// complete (read-while-write).
func TestCoalescing(t *testing.T) {
	const clients = 30
	release := make(chan struct{})
	half := strings.Repeat("a", 64<<10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", fmt.Sprint(2*len(half)))
		io.WriteString(w, half)
		w.(http.Flusher).Flush()
		<-release // the second half only once every client has the first
		io.WriteString(w, half)
	})
	p := newTestProxy(t, Options{})

	var firstBytes sync.WaitGroup
	firstBytes.Add(clients)
	type result struct {
		status string
		n      int
		err    error
	}
	results := make(chan result, clients)
	for range clients {
		go func() {
			resp, err := p.client.Get(o.URL + "/big")
			if err != nil {
				firstBytes.Done()
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 1)
			_, err = io.ReadFull(resp.Body, buf)
			firstBytes.Done()
			rest, err2 := io.ReadAll(resp.Body)
			results <- result{status: resp.Header.Get("Cache-Status"), n: 1 + len(rest), err: errors.Join(err, err2)}
		}()
	}
	firstBytes.Wait()
	close(release)
	collapsed := 0
	for range clients {
		r := <-results
		if r.err != nil || r.n != 2*len(half) {
			t.Fatalf("client: %d bytes, %v", r.n, r.err)
		}
		if strings.HasSuffix(r.status, "; collapsed") {
			collapsed++
		}
	}
	if n := o.count("/big"); n != 1 {
		t.Errorf("origin saw %d requests for 30 concurrent clients, want 1", n)
	}
	if collapsed != clients-1 {
		t.Errorf("%d responses say collapsed, want %d", collapsed, clients-1)
	}
	if resp, _ := p.get(t, o.URL+"/big"); resp.Header.Get("Cache-Status") != statusHit {
		t.Errorf("after the fill: %q, want a hit", resp.Header.Get("Cache-Status"))
	}
}

// TestClientHangupKeepsFill: the client that started a fill goes away; the
// object is still fetched whole and stored.
func TestClientHangupKeepsFill(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", "8")
		io.WriteString(w, "1234")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "5678")
	})
	p := newTestProxy(t, Options{})
	resp, err := p.client.Get(o.URL + "/f")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close() // hang up mid-body
	p.client.Transport.(*http.Transport).CloseIdleConnections()
	close(release)
	// The fill goes on without the client; a second client joins it or
	// finds it stored, and the origin is asked once.
	resp2, body := p.get(t, o.URL+"/f")
	if body != "12345678" {
		t.Fatalf("second client got %q (%s)", body, resp2.Header.Get("Cache-Status"))
	}
	if n := o.count("/f"); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

func TestLargeObjectStreamsThrough(t *testing.T) {
	body := strings.Repeat("z", 3<<20)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		io.WriteString(w, body)
	})
	p := newTestProxy(t, Options{MaxObjectSize: 1 << 20})
	for _, path := range []string{"/sized", "/chunked"} {
		for range 2 {
			if _, got := p.get(t, o.URL+path); got != body {
				t.Fatalf("%s: got %d bytes, want %d", path, len(got), len(body))
			}
		}
		if n := o.count(path); n != 2 {
			t.Errorf("%s: origin saw %d requests, want 2 (too large to store)", path, n)
		}
	}
	if st := p.cache.Stats(); st.Objects != 0 {
		t.Errorf("cache holds %d objects, want 0", st.Objects)
	}
}

func TestInvalidationOnUnsafeMethod(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, r.Method)
	})
	p := newTestProxy(t, Options{})
	p.get(t, o.URL+"/doc")
	resp, err := p.client.Post(o.URL+"/doc", "text/plain", strings.NewReader("new"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Cache-Status"); got != "stageproxy; fwd=method; fwd-status=200" {
		t.Errorf("POST Cache-Status %q", got)
	}
	if resp, _ := p.get(t, o.URL+"/doc"); resp.Header.Get("Cache-Status") == statusHit {
		t.Errorf("GET after POST was a hit; the POST should have invalidated it")
	}
}

func TestStaleIfOriginDown(t *testing.T) {
	var down atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("ETag", `"a"`)
		fmt.Fprint(w, "stored copy")
	})
	for _, relaxed := range []bool{true, false} {
		t.Run(fmt.Sprintf("relaxed=%v", relaxed), func(t *testing.T) {
			p := newTestProxy(t, Options{ServeStaleOnError: relaxed})
			down.Store(false)
			p.get(t, o.URL+"/s")
			down.Store(true)
			resp, body := p.get(t, o.URL+"/s")
			if relaxed && (resp.StatusCode != 200 || body != "stored copy") {
				t.Errorf("relaxed: %d %q, want the stale copy", resp.StatusCode, body)
			}
			const want = "stageproxy; fwd=stale; fwd-status=503; detail=stale-if-error"
			if cs := resp.Header.Get("Cache-Status"); relaxed && cs != want {
				t.Errorf("relaxed: Cache-Status %q, want %q (the origin's status)", cs, want)
			}
			if !relaxed && resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("strict: %d, want the origin's 503", resp.StatusCode)
			}
		})
	}
}

// timeoutErr is a dial error that says it timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "dial timed out" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestProxyMadeErrors(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens here now: connection refused

	tests := []struct {
		name   string
		opts   Options
		target func(p *testProxy) string
		want   int
	}{
		{"origin refused", Options{}, func(*testProxy) string { return "http://" + deadAddr + "/" }, http.StatusBadGateway},
		{"origin timeout", Options{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}
		}}, func(*testProxy) string { return "http://127.0.0.1:1/" }, http.StatusGatewayTimeout},
		{"client not allowed", Options{AllowedClients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			func(*testProxy) string { return "http://127.0.0.1:1/" }, http.StatusForbidden},
		{"loop to itself", Options{}, func(p *testProxy) string { return "http://" + p.url.Host + "/metrics" }, http.StatusLoopDetected},
		{"loop via localhost", Options{}, func(p *testProxy) string { return "http://localhost:" + p.url.Port() + "/" }, http.StatusLoopDetected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, tt.opts)
			resp, body := p.get(t, tt.target(p))
			if resp.StatusCode != tt.want {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tt.want)
			}
			if strings.Count(strings.TrimSpace(body), "\n") != 0 || body == "" {
				t.Errorf("body %q, want one line", body)
			}
		})
	}
}

// rawExchange sends raw bytes to the proxy and returns the status code.
func rawExchange(t *testing.T, addr, raw string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMalformedRequests(t *testing.T) {
	var hits atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	p := newTestProxy(t, Options{})
	host := strings.TrimPrefix(o.URL, "http://")
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"bad request line", "GET\r\n\r\n", http.StatusBadRequest},
		{"bad version", "GET http://" + host + "/ HTTP/9\r\nHost: " + host + "\r\n\r\n", http.StatusBadRequest},
		{"huge header", "GET http://" + host + "/ HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"Content-Length and Transfer-Encoding", "POST http://" + host + "/ HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", http.StatusBadRequest},
		{"CONNECT to a port not allowed", "CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n", http.StatusForbidden},
		{"CONNECT without a host", "CONNECT :" + o.port() + " HTTP/1.1\r\nHost: :" + o.port() + "\r\n\r\n", http.StatusBadRequest},
		{"CONNECT without a port", "CONNECT 127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", http.StatusBadRequest},
		{"URL without a host", "GET http:///x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", http.StatusBadRequest},
		{"port out of range", "GET http://127.0.0.1:99999/ HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n\r\n", http.StatusBadRequest},
		{"scheme not proxied", "GET ftp://" + host + "/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rawExchange(t, p.url.Host, tt.raw); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("origin saw %d requests, want 0", n)
	}
}

func TestHopByHopAndProxyAuthorizationNotForwarded(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
	})
	p := newTestProxy(t, Options{})
	resp, _ := p.get(t, o.URL+"/h", "Proxy-Authorization", "Basic dTpw", "Connection", "X-Drop", "X-Drop", "1", "Te", "trailers")
	r := o.lastRequest("/h")
	for _, k := range []string{"Proxy-Authorization", "X-Drop", "Te"} {
		if v := r.Header.Get(k); v != "" {
			t.Errorf("origin received %s: %q", k, v)
		}
	}
	for _, k := range []string{"X-Secret-Hop", "Keep-Alive"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("client received %s: %q", k, v)
		}
	}
}

func TestAdminPages(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	p := newTestProxy(t, Options{Status: func() [][2]string { return [][2]string{{"parentProxy", "none"}} }})
	p.get(t, o.URL+"/m")
	p.get(t, o.URL+"/m")
	direct := &http.Client{}
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/metrics": "stageproxy_cache_hits_total 1",
		"/":        "parentProxy",
	} {
		resp, err := direct.Get(p.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %d, body lacks %q:\n%s", path, resp.StatusCode, want, b)
		}
		if cs := resp.Header.Get("Cache-Status"); cs != "stageproxy; detail=admin" {
			t.Errorf("GET %s: Cache-Status %q, want %q", path, cs, "stageproxy; detail=admin")
		}
	}
}

func TestConnectTunnel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // echo
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var pr PortRange
	fmt.Sscan(port, &pr.Lo)
	pr.Hi = pr.Lo
	logs := make(chan slog.Record, 64)
	p := newTestProxy(t, Options{TunnelAllowedPorts: []PortRange{pr}, Logger: slog.New(recordHandler{logs})})
	c, _ := openTunnel(t, p, ln.Addr().String()) // CONNECT answered 200, and "ping" echoed
	c.Close()

	// Its access-log line comes when the tunnel closes, with the bytes
	// the client was sent.
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-logs:
			if r.Message != AccessLogMessage {
				continue
			}
			attrs := map[string]string{}
			r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
			if attrs["method"] != "CONNECT" || attrs["status"] != "200" || attrs["bytes"] != "4" {
				t.Errorf("access log line %v, want CONNECT, status 200, 4 bytes", attrs)
			}
			return
		case <-timeout:
			t.Fatal("no access-log line within 10 s of closing the tunnel")
		}
	}
}

func TestHeadDoesNotDisturbStoredGet(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"h"`)
		fmt.Fprint(w, "body")
	})
	p := newTestProxy(t, Options{})
	p.get(t, o.URL+"/h")
	req, _ := http.NewRequest(http.MethodHead, o.URL+"/h", nil)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Cache-Status") != statusHit || resp.ContentLength != 4 {
		t.Errorf("HEAD of a stored GET: %q, Content-Length %d; want a hit with the GET's length", resp.Header.Get("Cache-Status"), resp.ContentLength)
	}
	// A HEAD that must go to the origin (no-cache) leaves the stored GET alone.
	req.Header.Set("Cache-Control", "no-cache")
	resp, err = p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, body := p.get(t, o.URL+"/h"); resp.Header.Get("Cache-Status") != statusHit || body != "body" {
		t.Errorf("GET after a forwarded HEAD: %q %q, want a hit", resp.Header.Get("Cache-Status"), body)
	}
	if n := o.count("/h"); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (the GET and the no-cache HEAD)", n)
	}
}

// recordHandler passes every log record's message and attributes to a channel.
type recordHandler struct{ ch chan slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.ch <- r
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// TestSlowClientIsCutOff: a client that stops reading a large response does
// not hold its handler for ever; the write times out and the request ends.
func TestSlowClientIsCutOff(t *testing.T) {
	body := strings.Repeat("s", 48<<20) // far more than loopback socket buffers absorb
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, body)
	})
	records := make(chan slog.Record, 64)
	c256, err := cache.New(cache.Config{MaxBytes: 256 << 20, MaxObjectBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c256.Close)
	p := newTestProxy(t, Options{Cache: c256, Logger: slog.New(recordHandler{records}), ClientWriteTimeout: time.Second, MaxObjectSize: 64 << 20})
	p.get(t, o.URL+"/big") // stored; the next fetch is a hit written in one go

	c, err := net.Dial("tcp", p.url.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s/big HTTP/1.1\r\nHost: %s\r\n\r\n", o.URL, strings.TrimPrefix(o.URL, "http://"))
	// Read nothing. The access-log line of this request appears once its
	// handler has given up on the client.
	guard := time.After(20 * time.Second)
	for {
		select {
		case r := <-records:
			var cacheOutcome string
			var bytes int64
			r.Attrs(func(a slog.Attr) bool {
				switch a.Key {
				case "cache":
					cacheOutcome = a.Value.String()
				case "bytes":
					bytes = a.Value.Int64()
				}
				return true
			})
			if r.Message == "request" && cacheOutcome == "hit" {
				if bytes >= int64(len(body)) {
					t.Errorf("handler wrote all %d bytes to a client that read none", bytes)
				}
				return
			}
		case <-guard:
			t.Fatal("the handler of a client that stopped reading did not finish within 20 s")
		}
	}
}

// TestCacheStatusAppended: behind another cache, the upstream's
// Cache-Status entry is kept and ours comes last (RFC 9211 §2).
func TestCacheStatusAppended(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "parent; hit")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	p := newTestProxy(t, Options{})
	for _, want := range []string{"stageproxy; fwd=uri-miss; fwd-status=200; stored", statusHit} {
		resp, _ := p.get(t, o.URL+"/cs")
		got := resp.Header.Values("Cache-Status")
		if len(got) != 2 || got[0] != "parent; hit" || got[1] != want {
			t.Errorf("Cache-Status = %q, want [\"parent; hit\" %q]", got, want)
		}
	}
}

// TestChunkedBodyCutShortReachesClientCutShort: an origin that closes its
// connection before a chunked body's last chunk must not have the proxy
// end the body for it. goproxy ignores a failed body copy, and net/http
// would then write the last chunk, or send a small body with a
// Content-Length: a truncated download would look complete.
func TestChunkedBodyCutShortReachesClientCutShort(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		cacheControl string
		size         int
	}{
		{"stored fill", http.MethodGet, "max-age=60", 50000},
		{"small stored fill", http.MethodGet, "max-age=60", 22},
		{"not stored", http.MethodGet, "no-store", 50000},
		{"POST", http.MethodPost, "", 50000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.cacheControl != "" {
					w.Header().Set("Cache-Control", tt.cacheControl)
				}
				w.Write(bytes.Repeat([]byte("x"), tt.size))
				w.(http.Flusher).Flush() // chunked: no Content-Length
				panic(http.ErrAbortHandler)
			})
			p := newTestProxy(t, Options{})
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, o.URL+"/f", nil)
			resp, err := p.client.Do(req)
			if err != nil {
				return // cut short before the head: the client knows
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("%s: read %d bytes and a clean end (Content-Length %d, Transfer-Encoding %v); want an error",
					tt.method, len(b), resp.ContentLength, resp.TransferEncoding)
			}
		})
	}
}

// TestNoContentTypeAdded: a response without Content-Type gets none from
// the proxy, on a miss and on a hit (net/http would guess one from the
// body).
func TestNoContentTypeAdded(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html>plain text that looks like HTML</html>")
	})
	p := newTestProxy(t, Options{})
	for _, want := range []string{"miss", "hit"} {
		resp, _ := p.get(t, o.URL+"/t")
		if ct, ok := resp.Header["Content-Type"]; ok {
			t.Errorf("%s: Content-Type %q, want none", want, ct)
		}
	}
	if n := o.count("/t"); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

// TestViaNamesTheClientsProtocol: a request received over HTTP/1.0 goes on
// with "Via: 1.0 stageproxy" (RFC 9110 §7.6.3), one over 1.1 with 1.1.
func TestViaNamesTheClientsProtocol(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "x")
	})
	p := newTestProxy(t, Options{})
	host := strings.TrimPrefix(o.URL, "http://")
	for proto, want := range map[string]string{"HTTP/1.0": "1.0 stageproxy", "HTTP/1.1": "1.1 stageproxy"} {
		raw := "GET " + o.URL + "/v HTTP/" + proto[5:] + "\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"
		if code := rawExchange(t, p.url.Host, raw); code != 200 {
			t.Fatalf("%s: status %d", proto, code)
		}
		if got := o.lastRequest("/v").Header.Get("Via"); got != want {
			t.Errorf("%s: origin got Via %q, want %q", proto, got, want)
		}
	}
}

// TestCacheStatusFwdForResponseNoCache: an entry stored with "no-cache,
// max-age=60" is revalidated every time; with no directives in the request
// Cache-Status says fwd=stale (RFC 9211: fwd=request is for requests whose
// own directives prevented reuse), and fwd=request when they did.
func TestCacheStatusFwdForResponseNoCache(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache, max-age=60")
		w.Header().Set("ETag", `"n"`)
		if r.Header.Get("If-None-Match") == `"n"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "n")
	})
	p := newTestProxy(t, Options{})
	p.get(t, o.URL+"/n")
	for _, tt := range []struct {
		hdr  []string
		want string
	}{
		{nil, "stageproxy; fwd=stale; fwd-status=304"},
		{[]string{"Cache-Control", "max-age=0"}, "stageproxy; fwd=request; fwd-status=304"},
	} {
		if resp, _ := p.get(t, o.URL+"/n", tt.hdr...); resp.Header.Get("Cache-Status") != tt.want {
			t.Errorf("request %v: Cache-Status %q, want %q", tt.hdr, resp.Header.Get("Cache-Status"), tt.want)
		}
	}
}

// TestAgeOverflowSent: an origin Age beyond 2^31 reaches the client as
// 2147483648 (RFC 9111 §5.1), and the response is stale on arrival.
func TestAgeOverflowSent(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Age", "99999999999999999999")
		fmt.Fprint(w, "a")
	})
	p := newTestProxy(t, Options{})
	for i := range 2 {
		resp, _ := p.get(t, o.URL+"/a")
		if got := resp.Header.Get("Age"); got != "2147483648" {
			t.Errorf("fetch %d: Age %q, want 2147483648", i+1, got)
		}
	}
	if n := o.count("/a"); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (stale on arrival)", n)
	}
}
