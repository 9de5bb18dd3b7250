//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/armon/go-socks5"
)

// The parent proxies of these tests (FIELD-NOTES 3.5) run in the test
// process on 127.0.0.1, between stageproxy and the loopback registries:
//
//	pip/npm → stageproxy → test parent → registry
//
// Each records what it relayed, so that a test can tell "the parent was
// used" (and for which files) from "stageproxy went straight to the
// registry", and check that the parent's credentials stopped at the parent.

// testParent is what a test parent proxy saw. Its methods are safe for
// concurrent use.
type testParent struct {
	// Addr is the HOST:PORT it listens on.
	Addr string

	mu sync.Mutex // protects the fields below
	// relays counts what the parent relayed: for the HTTP parent, requests
	// and CONNECTs that passed authentication; for the SOCKS parents,
	// connections accepted.
	relays int
	// rejected counts requests or handshakes refused for bad credentials.
	rejected int
	// paths counts the URL paths of the HTTP requests relayed: read from
	// the request itself by the HTTP parent, from the client's byte stream
	// in SOCKS connections and CONNECT tunnels.
	paths map[string]int
	// proxyAuth lists the Proxy-Authorization values the HTTP parent got
	// ("" for a request without one).
	proxyAuth []string
	// dialed holds the local addresses of the connections the parent
	// opened to origins, which the origin sees as RemoteAddr.
	dialed map[string]bool
}

func newTestParent() *testParent {
	return &testParent{paths: map[string]int{}, dialed: map[string]bool{}}
}

// relayCount returns how much the parent relayed (see testParent.relays).
func (p *testParent) relayCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.relays
}

// rejectedCount returns how many requests or handshakes it refused.
func (p *testParent) rejectedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejected
}

// pathCount returns how many requests for path it relayed.
func (p *testParent) pathCount(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paths[path]
}

// pathSnapshot returns a copy of the per-path counts.
func (p *testParent) pathSnapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.paths)
}

// proxyAuthSeen returns the Proxy-Authorization values the HTTP parent got.
func (p *testParent) proxyAuthSeen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.proxyAuth)
}

// opened reports whether remoteAddr, as an origin saw it, is the far end of
// a connection the parent opened.
func (p *testParent) opened(remoteAddr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialed[remoteAddr]
}

// String summarises what the parent saw, for failure messages.
func (p *testParent) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "parent %s: relays=%d rejected=%d proxy-authorization=%q\n", p.Addr, p.relays, p.rejected, p.proxyAuth)
	for _, path := range slices.Sorted(maps.Keys(p.paths)) {
		fmt.Fprintf(&b, "  %s ×%d\n", path, p.paths[path])
	}
	return b.String()
}

func (p *testParent) recordPath(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paths[path]++
}

// dial opens a connection to an origin and remembers its local address.
// With sniff, the request lines written into it are recorded as paths.
func (p *testParent) dial(ctx context.Context, network, addr string, sniff bool) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.dialed[c.LocalAddr().String()] = true
	p.mu.Unlock()
	if !sniff {
		return c, nil
	}
	return &sniffConn{Conn: c, record: p.recordPath}, nil
}

// listen returns a listener on 127.0.0.1:0, closed at the end of the test,
// that counts accepted connections as relays when countConns is set.
func (p *testParent) listen(t *testing.T, countConns bool) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p.Addr = l.Addr().String()
	if !countConns {
		return l
	}
	return &countingListener{Listener: l, p: p}
}

// countingListener counts accepted connections as the parent's relays.
type countingListener struct {
	net.Listener
	p *testParent
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.p.mu.Lock()
		l.p.relays++
		l.p.mu.Unlock()
	}
	return c, err
}

// basicAuth is the Proxy-Authorization value for user and pass (RFC 7617).
func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// startHTTPParent runs an HTTP parent proxy that wants Basic credentials
// user:pass (407 with Proxy-Authenticate otherwise), forwards absolute-form
// requests with a Transport that uses no proxy, and tunnels CONNECT by
// hijacking and copying. Like Squid, it consumes Proxy-Authorization: the
// origin never gets it from the parent.
func startHTTPParent(t *testing.T, user, pass string) *testParent {
	t.Helper()
	p := newTestParent()
	want := basicAuth(user, pass)
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.dial(ctx, network, addr, false)
		},
		DisableCompression:    true, // pass the bytes through as the origin sent them
		ResponseHeaderTimeout: 30 * time.Second,
	}
	srv := &httptest.Server{
		Listener: p.listen(t, false),
		Config: &http.Server{
			ReadHeaderTimeout: 10 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got := r.Header.Get("Proxy-Authorization")
				p.mu.Lock()
				p.proxyAuth = append(p.proxyAuth, got)
				ok := got == want
				if ok {
					p.relays++
				} else {
					p.rejected++
				}
				p.mu.Unlock()
				if !ok {
					w.Header().Set("Proxy-Authenticate", `Basic realm="stageproxy e2e parent"`)
					http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
					return
				}
				if r.Method == http.MethodConnect {
					p.connect(w, r)
					return
				}
				if !r.URL.IsAbs() {
					http.Error(w, "want a request in absolute form", http.StatusBadRequest)
					return
				}
				p.recordPath(r.URL.Path)
				p.forward(tr, w, r)
			}),
		},
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(tr.CloseIdleConnections)
	return p
}

// forward relays an absolute-form request with tr, as a proxy does: minus
// the hop-by-hop fields and plus its own Via.
func (p *testParent) forward(tr *http.Transport, w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	removeHopByHop(out.Header)
	out.Header.Add("Via", "1.1 e2e-parent")
	resp, err := tr.RoundTrip(out)
	if err != nil {
		http.Error(w, "e2e parent: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	removeHopByHop(resp.Header)
	maps.Copy(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// connect tunnels a CONNECT: dial, hijack, answer 200, copy both ways.
func (p *testParent) connect(w http.ResponseWriter, r *http.Request) {
	target, err := p.dial(r.Context(), "tcp", r.Host, true)
	if err != nil {
		http.Error(w, "e2e parent: "+err.Error(), http.StatusBadGateway)
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		target.Close()
		http.Error(w, "e2e parent: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		client.Close()
		target.Close()
		return
	}
	relay(client, brw.Reader, target)
}

// removeHopByHop deletes the fields that concern one connection only (RFC
// 9110 §7.6.1), the credentials meant for this parent among them.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization",
		"Proxy-Authenticate", "TE", "Trailer", "Transfer-Encoding", "Upgrade"} {
		h.Del(name)
	}
}

// startSOCKS5Parent runs armon/go-socks5 with username/password
// authentication (RFC 1929) for user:pass and a silent logger; it counts
// accepted connections as relays and failed logins as rejections.
func startSOCKS5Parent(t *testing.T, user, pass string) *testParent {
	t.Helper()
	p := newTestParent()
	srv, err := socks5.New(&socks5.Config{
		Credentials: countingCredentials{store: socks5.StaticCredentials{user: pass}, p: p},
		Logger:      log.New(io.Discard, "", 0),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.dial(ctx, network, addr, true)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(p.listen(t, true)) // returns when the listener closes
	return p
}

// countingCredentials counts the logins its store refuses.
type countingCredentials struct {
	store socks5.CredentialStore
	p     *testParent
}

func (c countingCredentials) Valid(user, password string) bool {
	ok := c.store.Valid(user, password)
	if !ok {
		c.p.mu.Lock()
		c.p.rejected++
		c.p.mu.Unlock()
	}
	return ok
}

// startSOCKS4aParent runs a SOCKS4/SOCKS4a server
// (https://www.openssh.com/txt/socks4a.protocol) that wants the user id
// userID: it reads the request, connects, answers 90 (granted) or 91
// (rejected) and copies. It counts accepted connections as relays.
func startSOCKS4aParent(t *testing.T, userID string) *testParent {
	t.Helper()
	p := newTestParent()
	l := p.listen(t, true)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serveSOCKS4(c, userID)
		}
	}()
	return p
}

func (p *testParent) serveSOCKS4(c net.Conn, userID string) {
	c.SetDeadline(time.Now().Add(10 * time.Second)) // for the handshake only
	br := bufio.NewReader(c)
	var h [8]byte // VN=4, CD=1 (CONNECT), DSTPORT, DSTIP
	if _, err := io.ReadFull(br, h[:]); err != nil || h[0] != 4 || h[1] != 1 {
		c.Close()
		return
	}
	user, err := br.ReadString(0)
	if err != nil {
		c.Close()
		return
	}
	host := net.IP(h[4:8]).String()
	if h[4] == 0 && h[5] == 0 && h[6] == 0 && h[7] != 0 { // 0.0.0.x: SOCKS4a, a name follows
		name, err := br.ReadString(0)
		if err != nil {
			c.Close()
			return
		}
		host = strings.TrimSuffix(name, "\x00")
	}
	reject := []byte{0, 91, 0, 0, 0, 0, 0, 0}
	if strings.TrimSuffix(user, "\x00") != userID {
		p.mu.Lock()
		p.rejected++
		p.mu.Unlock()
		c.Write(reject)
		c.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	target, err := p.dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(h[2])<<8|int(h[3]))), true)
	cancel()
	if err != nil {
		c.Write(reject)
		c.Close()
		return
	}
	if _, err := c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0}); err != nil {
		c.Close()
		target.Close()
		return
	}
	c.SetDeadline(time.Time{})
	relay(c, br, target)
}

// relay copies client (read through clientR, which may hold buffered
// bytes) to target and back, passing on each direction's end as a
// half-close, and closes both when both directions are done.
func relay(client net.Conn, clientR io.Reader, target net.Conn) {
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(target, clientR)
		closeWrite(target)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(client, target)
		closeWrite(client)
		done <- struct{}{}
	}()
	<-done
	<-done
	client.Close()
	target.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// sniffConn is a connection to an origin that records the request line of
// every HTTP request written into it. It sees plain HTTP only, which is
// what the loopback registries speak. Write must not be called
// concurrently (a relay writes from one goroutine).
type sniffConn struct {
	net.Conn
	record  func(path string)
	partial []byte // the start of a line not yet complete
}

// maxSniffLine bounds partial: a longer "line" is a body, not a request
// line, and is skipped.
const maxSniffLine = 16 << 10

func (c *sniffConn) Write(b []byte) (int, error) {
	rest := b
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(c.partial)+len(rest) <= maxSniffLine {
				c.partial = append(c.partial, rest...)
			} else {
				c.partial = c.partial[:0]
			}
			break
		}
		line := string(append(c.partial, rest[:i]...))
		c.partial = c.partial[:0]
		rest = rest[i+1:]
		if path, ok := requestLinePath(strings.TrimSuffix(line, "\r")); ok {
			c.record(path)
		}
	}
	return c.Conn.Write(b)
}

// CloseWrite passes a half-close on, which go-socks5 and relay use.
func (c *sniffConn) CloseWrite() error {
	closeWrite(c.Conn)
	return nil
}

// requestLinePath returns the URL path of an HTTP/1.x request line
// ("GET /files/x.whl HTTP/1.1", or with an absolute URL).
func requestLinePath(line string) (string, bool) {
	f := strings.Split(line, " ")
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return "", false
	}
	switch f[0] {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH":
	default:
		return "", false
	}
	u, err := url.ParseRequestURI(f[1])
	if err != nil {
		return "", false
	}
	return u.Path, true
}

// originLog records, for every request a registry gets, where it came from
// and whether it carried Proxy-Authorization, which the newOrigin recorder
// does not keep.
type originLog struct {
	mu   sync.Mutex // protects reqs
	reqs []originRequest
}

type originRequest struct {
	path, remoteAddr, proxyAuth string
}

// wrap returns h with every request logged.
func (o *originLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.reqs = append(o.reqs, originRequest{path: r.URL.Path, remoteAddr: r.RemoteAddr, proxyAuth: r.Header.Get("Proxy-Authorization")})
		o.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// len returns how many requests have been logged.
func (o *originLog) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reqs)
}

// notFrom returns the paths of the requests, from the from-th on, that did
// not arrive over a connection the parent opened.
func (o *originLog) notFrom(p *testParent, from int) []string {
	o.mu.Lock()
	reqs := slices.Clone(o.reqs[min(from, len(o.reqs)):])
	o.mu.Unlock()
	var bad []string
	for _, r := range reqs {
		if !p.opened(r.remoteAddr) {
			bad = append(bad, r.path+" from "+r.remoteAddr)
		}
	}
	return bad
}

// withProxyAuth returns the requests that carried Proxy-Authorization, as
// "PATH: VALUE".
func (o *originLog) withProxyAuth() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var bad []string
	for _, r := range o.reqs {
		if r.proxyAuth != "" {
			bad = append(bad, r.path+": "+r.proxyAuth)
		}
	}
	return bad
}
