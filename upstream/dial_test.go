package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stageproxy/stageproxy/internal/testparent"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// testContext bounds every test's network steps.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestDialer(t *testing.T, cfg Config) *Dialer {
	t.Helper()
	d, err := NewDialer(cfg, nil)
	if err != nil {
		t.Fatalf("NewDialer(%+v) = %v", cfg, err)
	}
	return d
}

// wantParentError fails the test unless err is a *ParentError with Op op.
func wantParentError(t *testing.T, err error, op string) *ParentError {
	t.Helper()
	pe, ok := errors.AsType[*ParentError](err)
	if !ok {
		t.Fatalf("error = %v (%T), want a *ParentError", err, err)
	}
	if pe.Op != op {
		t.Fatalf("ParentError.Op = %q, want %q (%v)", pe.Op, op, pe)
	}
	return pe
}

// startEcho runs a TCP echo server and returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// echoOnce checks that c echoes.
func echoOnce(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatalf("write to tunnel: %v", err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("read from tunnel = %q, %v; want ping", got, err)
	}
}

// origin is an HTTP origin recording whether a Proxy-Authorization reached it.
type origin struct {
	url       string
	hits      atomic.Int32
	sawProxyA atomic.Bool
}

func startOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		if r.Header.Get("Proxy-Authorization") != "" {
			o.sawProxyA.Store(true)
		}
		io.WriteString(w, "hello from origin")
	}))
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

// deadAddr returns an address nothing listens on: connection refused
// (Caddy's deadUpstreamAddr trick).
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentParent accepts connections and never answers; accepted receives
// one value per connection.
func silentParent(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l := listen(t)
	ch := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return l.Addr().String(), ch
}

// parents runs one of each test parent, for tables over parent kinds.
type parents struct {
	http   *testparent.HTTP
	socks5 *socks5Parent
	socks4 *socks4Parent
}

func startParents(t *testing.T) *parents {
	return &parents{http: testparent.NewHTTP(t, "u", "p"), socks5: startSOCKS5Parent(t, nil), socks4: startSOCKS4Parent(t, "u")}
}

// counts is what the parents saw: HTTP GETs and CONNECTs, SOCKS5 and SOCKS4
// connections.
type counts struct{ gets, connects, socks5, socks4 int }

func (p *parents) counts() counts {
	return counts{int(p.http.Relayed.Load()), int(p.http.Connects.Load()), len(p.socks5.seen()), len(p.socks4.seen())}
}

// Parent configurations over the test parents, with good credentials.
func httpConfig(p *parents) *Parent {
	return &Parent{Kind: HTTP, Addr: p.http.Addr, User: "u", Password: "p"}
}
func socks5Config(p *parents) *Parent {
	return &Parent{Kind: SOCKS5, Addr: p.socks5.addr, User: "u", Password: "p"}
}
func socks4Config(k Kind) func(p *parents) *Parent {
	return func(p *parents) *Parent { return &Parent{Kind: k, Addr: p.socks4.addr, User: "u"} }
}

func none(*parents) *Parent { return nil }

// TestThroughParents fetches from an origin with an http.Transport wired to
// the Dialer, and opens a tunnel to an echo server, through each kind of
// parent.
func TestThroughParents(t *testing.T) {
	tests := []struct {
		name        string
		http, socks func(*parents) *Parent
		want        counts
	}{
		{name: "http", http: httpConfig, socks: none, want: counts{gets: 1, connects: 1}},
		{name: "socks5", http: none, socks: socks5Config, want: counts{socks5: 2}},
		{name: "socks4a", http: none, socks: socks4Config(SOCKS4a), want: counts{socks4: 2}},
		{name: "socks4", http: none, socks: socks4Config(SOCKS4), want: counts{socks4: 2}},
		{name: "http via socks5", http: httpConfig, socks: socks5Config, want: counts{gets: 1, connects: 1, socks5: 2}},
		{name: "direct", http: none, socks: none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startParents(t)
			o := startOrigin(t)
			echo := startEcho(t)
			d := newTestDialer(t, Config{HTTP: tt.http(p), SOCKS: tt.socks(p)})
			ctx := testContext(t)

			get(t, ctx, d, o.url)
			c, err := d.DialTunnel(ctx, "tcp", echo)
			if err != nil {
				t.Fatalf("DialTunnel(%s) = %v", echo, err)
			}
			echoOnce(t, c)
			c.Close()

			if got := p.counts(); got != tt.want {
				t.Errorf("parents saw %+v, want %+v", got, tt.want)
			}
			if o.sawProxyA.Load() {
				t.Error("origin saw a Proxy-Authorization header")
			}
			if tt.http(p) != nil {
				auth, _ := p.http.Seen()
				for _, a := range auth {
					if a != basic("u", "p") {
						t.Errorf("HTTP parent saw Proxy-Authorization %q, want %q", a, basic("u", "p"))
					}
				}
				if tt.socks(p) != nil {
					// Polipo's layering: every connection to the HTTP
					// parent went through the SOCKS parent.
					for _, a := range p.socks5.seen() {
						if a != p.http.Addr {
							t.Errorf("SOCKS parent connected to %s, want only the HTTP parent %s", a, p.http.Addr)
						}
					}
				}
			}
		})
	}
}

// get fetches url with a Transport using d and checks the origin's body.
func get(t *testing.T, ctx context.Context, d *Dialer, url string) {
	t.Helper()
	tr := &http.Transport{Proxy: d.ProxyURL, DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s = %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "hello from origin" {
		t.Fatalf("GET %s = %s %q, %v; want 200 %q", url, resp.Status, body, err, "hello from origin")
	}
}

// TestNoProxyGoesDirect checks that hosts in NoProxy bypass every parent.
func TestNoProxyGoesDirect(t *testing.T) {
	tests := []struct {
		name        string
		noProxy     []string
		http, socks func(*parents) *Parent
	}{
		{name: "http, exact IP", noProxy: []string{"127.0.0.1"}, http: httpConfig, socks: none},
		{name: "socks5, CIDR", noProxy: []string{"10.0.0.0/8", "127.0.0.0/8"}, http: none, socks: socks5Config},
		{name: "socks4a, star", noProxy: []string{"*"}, http: none, socks: socks4Config(SOCKS4a)},
		{name: "http via socks5, CIDR", noProxy: []string{"127.0.0.0/8"}, http: httpConfig, socks: socks5Config},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startParents(t)
			o := startOrigin(t)
			echo := startEcho(t)
			d := newTestDialer(t, Config{HTTP: tt.http(p), SOCKS: tt.socks(p), NoProxy: tt.noProxy})
			ctx := testContext(t)
			get(t, ctx, d, o.url)
			c, err := d.DialTunnel(ctx, "tcp", echo)
			if err != nil {
				t.Fatalf("DialTunnel(%s) = %v", echo, err)
			}
			echoOnce(t, c)
			c.Close()
			if got := p.counts(); got != (counts{}) {
				t.Errorf("parents saw %+v, want nothing", got)
			}
		})
	}
}

// TestWrongCredentials checks the one-line errors for refused credentials,
// and that they never carry the password.
func TestWrongCredentials(t *testing.T) {
	const password = "s3cret-wrong"
	tests := []struct {
		name   string
		parent func(p *parents) *Parent
		socks  bool
		want   string // PARENT: the parent's address; ECHO: the target
		op     string
	}{
		{name: "http", parent: func(p *parents) *Parent { return &Parent{Kind: HTTP, Addr: p.http.Addr, User: "u", Password: password} },
			want: "parent proxy PARENT rejected the credentials (407)", op: "auth"},
		{name: "http without credentials", parent: func(p *parents) *Parent { return &Parent{Kind: HTTP, Addr: p.http.Addr} },
			want: "parent proxy PARENT requires credentials (407)", op: "auth-required"},
		{name: "socks5", socks: true, parent: func(p *parents) *Parent {
			return &Parent{Kind: SOCKS5, Addr: p.socks5.addr, User: "u", Password: password}
		},
			want: "SOCKS5 parent PARENT rejected the username/password", op: "auth"},
		{name: "socks5 without credentials", socks: true, parent: func(p *parents) *Parent { return &Parent{Kind: SOCKS5, Addr: p.socks5.addr} },
			want: "SOCKS5 parent PARENT requires a username/password", op: "auth-required"},
		{name: "socks4a user id", socks: true, parent: func(p *parents) *Parent { return &Parent{Kind: SOCKS4a, Addr: p.socks4.addr, User: "nobody"} },
			want: "SOCKS4a parent PARENT rejected the request for ECHO (reply 91)", op: "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startParents(t)
			echo := startEcho(t)
			cfg := Config{HTTP: tt.parent(p)}
			if tt.socks {
				cfg = Config{SOCKS: tt.parent(p)}
			}
			d := newTestDialer(t, cfg)
			_, err := d.DialTunnel(testContext(t), "tcp", echo)
			pe := wantParentError(t, err, tt.op)
			want := strings.NewReplacer("PARENT", tt.parent(p).Addr, "ECHO", echo).Replace(tt.want)
			if err.Error() != want {
				t.Errorf("DialTunnel error = %q, want %q", err.Error(), want)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(pe.Parent, password) || strings.Contains(pe.Reply, password) {
				t.Errorf("error %q shows the password", err)
			}
			if pe.Timeout() {
				t.Errorf("%v: Timeout() = true, want false", err)
			}
		})
	}
}

// TestDeadParent checks that a parent refusing connections fails fast with
// "unreachable", on tunnels and on the Transport's path.
func TestDeadParent(t *testing.T) {
	dead := deadAddr(t)
	tests := []struct {
		name  string
		cfg   Config
		named string // how the message names the parent
	}{
		{name: "http", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: dead, User: "u", Password: "p"}}, named: dead},
		{name: "socks5", cfg: Config{SOCKS: &Parent{Kind: SOCKS5, Addr: dead, User: "u", Password: "p"}}, named: "socks5://" + dead},
		{name: "socks4a", cfg: Config{SOCKS: &Parent{Kind: SOCKS4a, Addr: dead}}, named: "socks4a://" + dead},
		{name: "socks4", cfg: Config{SOCKS: &Parent{Kind: SOCKS4, Addr: dead}}, named: "socks4://" + dead},
		{name: "http via dead socks5", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "127.0.0.1:9"}, SOCKS: &Parent{Kind: SOCKS5, Addr: dead}}, named: "socks5://" + dead},
	}
	o := startOrigin(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDialer(t, tt.cfg)
			ctx := testContext(t)
			want := "parent proxy " + tt.named + " unreachable: connect: connection refused"

			_, err := d.DialTunnel(ctx, "tcp", "127.0.0.1:443")
			pe := wantParentError(t, err, "dial")
			if err.Error() != want || pe.Timeout() {
				t.Errorf("DialTunnel error = %q (timeout %v), want %q", err, pe.Timeout(), want)
			}

			tr := &http.Transport{Proxy: d.ProxyURL, DialContext: d.DialContext}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.url, nil)
			_, err = tr.RoundTrip(req)
			pe = wantParentError(t, err, "dial")
			if pe.Error() != want {
				t.Errorf("GET through the parent: ParentError = %q, want %q", pe, want)
			}
		})
	}
}

// silentConfigs are parents that accept and never answer.
func silentConfigs(addr string) []struct {
	name string
	cfg  Config
} {
	return []struct {
		name string
		cfg  Config
	}{
		{"http", Config{HTTP: &Parent{Kind: HTTP, Addr: addr, User: "u", Password: "p"}}},
		{"socks5", Config{SOCKS: &Parent{Kind: SOCKS5, Addr: addr, User: "u", Password: "p"}}},
		{"socks4a", Config{SOCKS: &Parent{Kind: SOCKS4a, Addr: addr, User: "u"}}},
		{"socks4", Config{SOCKS: &Parent{Kind: SOCKS4, Addr: addr, User: "u"}}},
	}
}

// TestSilentParentTimesOut checks that a handshake honours the context's
// deadline and reports a timeout (the proxy's 504).
func TestSilentParentTimesOut(t *testing.T) {
	addr, _ := silentParent(t)
	for _, tt := range silentConfigs(addr) {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDialer(t, tt.cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := d.DialTunnel(ctx, "tcp", "127.0.0.1:443")
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("DialTunnel took %v with a 200ms deadline", elapsed)
			}
			pe := wantParentError(t, err, "handshake")
			if !pe.Timeout() || !strings.HasSuffix(pe.Error(), ": timed out") {
				t.Errorf("DialTunnel error = %q, Timeout() = %v; want a timeout", pe, pe.Timeout())
			}
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf("DialTunnel error %v is neither DeadlineExceeded nor a net.Error timeout", err)
			}
		})
	}
}

// TestSilentParentCancel checks that cancelling the context ends a
// handshake at once, reported as a cancellation, not a timeout.
func TestSilentParentCancel(t *testing.T) {
	addr, accepted := silentParent(t)
	for _, tt := range silentConfigs(addr) {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDialer(t, tt.cfg)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			go func() {
				<-accepted
				cancel()
			}()
			_, err := d.DialTunnel(ctx, "tcp", "127.0.0.1:443")
			// Usually "handshake"; "dial" if the cancel beat our side of
			// the TCP handshake.
			pe, ok := errors.AsType[*ParentError](err)
			if !ok || !errors.Is(err, context.Canceled) || pe.Timeout() {
				t.Errorf("DialTunnel error = %v (Timeout %v), want context.Canceled", err, pe.Timeout())
			}
		})
	}
}

func TestNewDialerValidation(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{name: "direct", cfg: Config{}},
		{name: "http", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "u", Password: "p"}}},
		{name: "http IPv6", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "[::1]:3128"}}},
		{name: "socks5 user 255", cfg: Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "h:1080", User: long[:255], Password: long[:255]}}},
		{name: "socks4 user id", cfg: Config{SOCKS: &Parent{Kind: SOCKS4, Addr: "h:1080", User: "id"}}},
		{name: "both", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "h:3128"}, SOCKS: &Parent{Kind: SOCKS4a, Addr: "s:1080"}, NoProxy: []string{"*.example.org", "::1"}}},

		{name: "http kind socks", cfg: Config{HTTP: &Parent{Kind: SOCKS5, Addr: "h:1"}}, wantErr: `HTTP parent h:1: unsupported kind "socks5" (want http)`},
		{name: "socks kind http", cfg: Config{SOCKS: &Parent{Kind: HTTP, Addr: "h:1"}}, wantErr: `SOCKS parent h:1: unsupported kind "http" (want socks4, socks4a, socks5)`},
		{name: "no port", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "h"}}, wantErr: `HTTP parent address "h": want HOST:PORT`},
		{name: "port 0", cfg: Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "h:0"}}, wantErr: `SOCKS parent address "h:0": port must be 1-65535`},
		{name: "port 65536", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "h:65536"}}, wantErr: "port must be 1-65535"},
		{name: "empty host", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: ":3128"}}, wantErr: "want HOST:PORT"},
		{name: "http user colon", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "h:1", User: "a:b"}}, wantErr: "cannot contain ':'"},
		{name: "http password newline", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "h:1", User: "a", Password: "x\r\ny"}}, wantErr: "control characters"},
		{name: "socks5 user too long", cfg: Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "h:1", User: long, Password: "p"}}, wantErr: "user name must be 1-255 bytes"},
		{name: "socks5 password without user", cfg: Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "h:1", Password: "p"}}, wantErr: "user name must be 1-255 bytes"},
		{name: "socks5 password too long", cfg: Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "h:1", User: "u", Password: long}}, wantErr: "password must be at most 255 bytes"},
		{name: "socks4 password", cfg: Config{SOCKS: &Parent{Kind: SOCKS4, Addr: "h:1", User: "u", Password: "p"}}, wantErr: "SOCKS4 parent h:1: SOCKS4 has no password, only a user id"},
		{name: "socks4a NUL", cfg: Config{SOCKS: &Parent{Kind: SOCKS4a, Addr: "h:1", User: "a\x00b"}}, wantErr: "cannot contain NUL"},
		{name: "bad CIDR", cfg: Config{NoProxy: []string{"example.org", "10.0.0.0/33"}}, wantErr: `noProxy: invalid entry "10.0.0.0/33"`},
		{name: "entry with port", cfg: Config{NoProxy: []string{"example.org:80"}}, wantErr: `noProxy: invalid entry "example.org:80"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDialer(tt.cfg, nil)
			if tt.wantErr == "" {
				if err != nil || d == nil {
					t.Fatalf("NewDialer(%+v) = %v, %v; want a dialer", tt.cfg, d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewDialer(%+v) = %v, want an error containing %q", tt.cfg, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), long) || (tt.cfg.HTTP != nil && tt.cfg.HTTP.Password != "" && strings.Contains(err.Error(), tt.cfg.HTTP.Password)) {
				t.Fatalf("NewDialer error %q shows a credential", err)
			}
		})
	}
}

func TestNewDialerCopiesConfig(t *testing.T) {
	p := &Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "u", Password: "p"}
	d := newTestDialer(t, Config{HTTP: p})
	p.Addr, p.Password = "10.9.9.9:1", "changed"
	u, _ := d.ProxyURL(&http.Request{URL: &url.URL{Scheme: "http", Host: "example.org"}})
	if u.String() != "http://u:p@10.0.0.2:3128" {
		t.Fatalf("ProxyURL after changing the Config = %v, want http://u:p@10.0.0.2:3128", u)
	}
	u.Host = "mutated"
	if u2, _ := d.ProxyURL(&http.Request{URL: &url.URL{Scheme: "http", Host: "example.org"}}); u2.Host != "10.0.0.2:3128" {
		t.Fatalf("ProxyURL returned a shared URL: %v", u2)
	}
}

func TestProxyURL(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://env-proxy:1")
	t.Setenv("HTTPS_PROXY", "http://env-proxy:1")
	t.Setenv("NO_PROXY", "")
	httpP := &Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "u", Password: "p w"}
	tests := []struct {
		name string
		cfg  Config
		url  string
		want string // "" for nil
	}{
		{name: "http parent", cfg: Config{HTTP: httpP}, url: "http://example.org/x", want: "http://u:p%20w@10.0.0.2:3128"},
		{name: "https through http parent", cfg: Config{HTTP: httpP}, url: "https://example.org/x", want: "http://u:p%20w@10.0.0.2:3128"},
		{name: "no credentials", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "[::1]:3128"}}, url: "http://example.org/", want: "http://[::1]:3128"},
		{name: "user only", cfg: Config{HTTP: &Parent{Kind: HTTP, Addr: "h:1", User: "u"}}, url: "http://example.org/", want: "http://u:@h:1"},
		{name: "no proxy domain", cfg: Config{HTTP: httpP, NoProxy: []string{"example.org"}}, url: "http://www.EXAMPLE.org:8080/"},
		{name: "no proxy other domain", cfg: Config{HTTP: httpP, NoProxy: []string{"example.org"}}, url: "http://notexample.org/", want: "http://u:p%20w@10.0.0.2:3128"},
		{name: "loopback is not implicitly direct", cfg: Config{HTTP: httpP}, url: "http://127.0.0.1:8080/", want: "http://u:p%20w@10.0.0.2:3128"},
		{name: "socks only", cfg: Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "h:1080"}}, url: "http://example.org/"},
		{name: "direct ignores the environment", cfg: Config{}, url: "http://example.org/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDialer(t, tt.cfg)
			req, _ := http.NewRequest(http.MethodGet, tt.url, nil)
			u, err := d.ProxyURL(req)
			got := ""
			if u != nil {
				got = u.String()
			}
			if err != nil || got != tt.want {
				t.Fatalf("ProxyURL(%s) = %q, %v; want %q", tt.url, got, err, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "direct"},
		{Config{HTTP: &Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "u", Password: "secret"}}, "http://10.0.0.2:3128"},
		{Config{SOCKS: &Parent{Kind: SOCKS4a, Addr: "10.0.0.3:1080", User: "id"}}, "socks4a://10.0.0.3:1080"},
		{Config{HTTP: &Parent{Kind: HTTP, Addr: "10.0.0.2:3128"}, SOCKS: &Parent{Kind: SOCKS5, Addr: "10.0.0.3:1080", User: "u", Password: "secret"}},
			"http://10.0.0.2:3128 via socks5://10.0.0.3:1080"},
	}
	for _, tt := range tests {
		if got := newTestDialer(t, tt.cfg).String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestHTTPParentAddrAlwaysViaSOCKS checks Polipo's layering even when the
// HTTP parent's host is in NoProxy.
func TestHTTPParentAddrAlwaysViaSOCKS(t *testing.T) {
	p := startParents(t)
	d := newTestDialer(t, Config{HTTP: httpConfig(p), SOCKS: socks5Config(p), NoProxy: []string{"127.0.0.1"}})
	c, err := d.DialContext(testContext(t), "tcp", p.http.Addr)
	if err != nil {
		t.Fatalf("DialContext(HTTP parent) = %v", err)
	}
	c.Close()
	if got := p.socks5.seen(); len(got) != 1 || got[0] != p.http.Addr {
		t.Fatalf("SOCKS parent dialed %q, want [%s]", got, p.http.Addr)
	}
}
