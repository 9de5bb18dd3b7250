package proxy

import (
	"bufio"
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stageproxy/stageproxy/internal/testparent"
	"github.com/stageproxy/stageproxy/upstream"
)

// staticUpstream sends plain HTTP to one parent and dials directly.
type staticUpstream struct{ parent *url.URL }

func (s staticUpstream) ProxyURL(*http.Request) (*url.URL, error) { return s.parent, nil }
func (s staticUpstream) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
func (s staticUpstream) DialTunnel(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.DialContext(ctx, network, addr)
}

func TestSetUpstreamLive(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			t.Errorf("origin received Proxy-Authorization %q", r.Header.Get("Proxy-Authorization"))
		}
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "from "+r.URL.Path)
	})
	parent := testparent.NewHTTP(t, "u", "p")
	p := newTestProxy(t, Options{})
	p.get(t, o.URL+"/before") // cached while direct

	pu, _ := url.Parse(parent.URL)
	pu.User = url.UserPassword("u", "p")
	p.h.SetUpstream(staticUpstream{pu}, pu.Host)
	if _, page := fetch(t, &http.Client{}, p.srv.URL+"/"); !strings.Contains(page, "<th>parent proxy in effect</th><td>"+pu.Host+"</td>") || strings.Contains(page, "u:p@") {
		t.Errorf("status page after the switch does not show %s as the parent in effect (or shows credentials):\n%s", pu.Host, page)
	}
	if _, body := p.get(t, o.URL+"/after", "Proxy-Authorization", "Basic Y2xpZW50OnNlY3JldA=="); body != "from /after" {
		t.Fatalf("through the parent: %q", body)
	}
	if n := parent.Relayed.Load(); n != 1 {
		t.Errorf("parent relayed %d requests, want 1", n)
	}
	if resp, _ := p.get(t, o.URL+"/before"); resp.Header.Get("Cache-Status") != statusHit {
		t.Errorf("entry cached before the switch: %q, want a hit (the cache is kept)", resp.Header.Get("Cache-Status"))
	}

	pu.User = url.UserPassword("u", "wrong")
	p.h.SetUpstream(staticUpstream{pu}, pu.Host)
	resp, body := p.get(t, o.URL+"/rejected")
	want := "parent proxy " + pu.Host + " rejected the credentials (407)"
	if resp.StatusCode != http.StatusBadGateway || strings.TrimSpace(body) != want {
		t.Errorf("wrong credentials: %d %q, want 502 %q", resp.StatusCode, body, want)
	}
	if strings.Contains(body, "wrong") {
		t.Errorf("the error shows the password: %q", body)
	}

	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := &url.URL{Scheme: "http", Host: dead.Addr().String()}
	dead.Close()
	p.h.SetUpstream(staticUpstream{deadURL}, deadURL.Host)
	resp, body = p.get(t, o.URL+"/dead")
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(body, "parent proxy "+deadURL.Host+" unreachable") {
		t.Errorf("dead parent: %d %q", resp.StatusCode, body)
	}

	p.h.SetUpstream(nil, "")
	if _, body := p.get(t, o.URL+"/direct"); body != "from /direct" {
		t.Errorf("direct again: %q", body)
	}
	if n := parent.Relayed.Load(); n != 1 {
		t.Errorf("parent relayed %d requests after the switches, want still 1", n)
	}
}

// TestParentErrorsReachClients: with a real upstream.Dialer whose SOCKS
// parent is down, plain requests and CONNECT tunnels both get a 502 whose
// one line names the parent.
func TestParentErrorsReachClients(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	d, err := upstream.NewDialer(upstream.Config{SOCKS: &upstream.Parent{Kind: upstream.SOCKS5, Addr: deadAddr, User: "u", Password: "secret"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := make(chan slog.Record, 64)
	p := newTestProxy(t, Options{TunnelAllowedPorts: []PortRange{{1, 65535}}, Logger: slog.New(recordHandler{logs})})
	p.h.SetUpstream(d, d.String())
	want := "parent proxy socks5://" + deadAddr + " unreachable"

	resp, body := p.get(t, "http://127.0.0.1:9/x")
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(body, want) || strings.Contains(body, "secret") {
		t.Errorf("GET: %d %q, want 502 starting %q", resp.StatusCode, body, want)
	}
	checkUpstreamFailedLog(t, logs, want)

	c, err := net.Dial("tcp", p.url.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")
	cresp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(cresp.Body)
	if cresp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(string(b), want) {
		t.Errorf("CONNECT: %d %q, want 502 starting %q", cresp.StatusCode, b, want)
	}
}

// TestSwitchKeepsTransfersInFlight: a download that started through the
// parent finishes through it after the switch to direct.
func TestSwitchKeepsTransfersInFlight(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8")
		io.WriteString(w, "1234")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "5678")
	})
	parent := testparent.NewHTTP(t, "u", "p")
	p := newTestProxy(t, Options{})
	pu, _ := url.Parse(parent.URL)
	pu.User = url.UserPassword("u", "p")
	p.h.SetUpstream(staticUpstream{pu}, pu.Host)

	resp, err := p.client.Get(o.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	p.h.SetUpstream(nil, "") // switch while the body is half sent
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(first)+string(rest) != "12345678" {
		t.Errorf("transfer across the switch: %q%q, %v", first, rest, err)
	}
	if n := parent.Relayed.Load(); n != 1 {
		t.Errorf("parent relayed %d, want 1", n)
	}
}

// TestInterceptionThroughParent: an intercepted HTTPS origin is reached
// through the HTTP parent's CONNECT (the proxy opens the tunnel and does TLS
// itself), and the parent's failures reach the client named as they are for
// plain HTTP.
func TestInterceptionThroughParent(t *testing.T) {
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "through the parent")
	}))
	t.Cleanup(origin.Close)
	originRoots := x509.NewCertPool()
	originRoots.AddCert(origin.Certificate())
	ca := newTestCA(t)
	parent := testparent.NewHTTP(t, "u", "p")
	p := newTestProxy(t, Options{UpstreamRoots: originRoots,
		Intercept: &Intercept{Match: func(h string) bool { return h == "127.0.0.1" }, Leaf: ca.leaf}})
	use := func(password string) {
		t.Helper()
		d, err := upstream.NewDialer(upstream.Config{HTTP: &upstream.Parent{Kind: upstream.HTTP, Addr: parent.Addr, User: "u", Password: password}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.h.SetUpstream(d, d.String())
	}

	use("p")
	client := p.httpsClient(t, ca.pool) // one connection: the second GET is served after the first is stored
	for i, want := range []string{"stageproxy; fwd=uri-miss; fwd-status=200; stored", statusHit} {
		resp, body := fetch(t, client, origin.URL+"/pkg")
		if body != "through the parent" || resp.Header.Get("Cache-Status") != want {
			t.Errorf("fetch %d: %q, Cache-Status %q, want %q", i+1, body, resp.Header.Get("Cache-Status"), want)
		}
	}
	if _, connectTo := parent.Seen(); len(connectTo) != 1 || connectTo[0] != strings.TrimPrefix(origin.URL, "https://") {
		t.Errorf("parent opened tunnels to %q, want one to the origin", connectTo)
	}

	use("wrong")
	resp, body := fetch(t, p.httpsClient(t, ca.pool), origin.URL+"/other")
	want := "parent proxy " + parent.Addr + " rejected the credentials (407)"
	if resp.StatusCode != http.StatusBadGateway || strings.TrimSpace(body) != want {
		t.Errorf("wrong credentials: %d %q, want 502 %q", resp.StatusCode, body, want)
	}

	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	d, err := upstream.NewDialer(upstream.Config{HTTP: &upstream.Parent{Kind: upstream.HTTP, Addr: deadAddr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.h.SetUpstream(d, d.String())
	resp, body = fetch(t, p.httpsClient(t, ca.pool), origin.URL+"/dead")
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(body, "parent proxy "+deadAddr+" unreachable") {
		t.Errorf("dead parent: %d %q, want 502 naming it unreachable", resp.StatusCode, body)
	}
}

// TestParentLoopGets508: a proxy whose parent is itself answers 508 at
// once. Each round of the loop carries one more Via entry; before, the
// second round joined the first round's fill and waited on itself until
// the response header timeout (then 504).
func TestParentLoopGets508(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "x")
	})
	p := newTestProxy(t, Options{})
	p.h.SetUpstream(staticUpstream{p.url}, p.url.Host)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.URL+"/loop", nil)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusLoopDetected {
		t.Errorf("status %d, want 508", resp.StatusCode)
	}
	if n := o.count("/loop"); n != 0 {
		t.Errorf("origin saw %d requests, want 0", n)
	}
}

// checkUpstreamFailedLog wants the "upstream failed" line already logged
// to give the client's reason (starting want), not Go's error chain
// ("proxyconnect tcp: …"), and no credential.
func checkUpstreamFailedLog(t *testing.T, logs <-chan slog.Record, want string) {
	t.Helper()
	for {
		select {
		case r := <-logs:
			if r.Message != "upstream failed" {
				continue
			}
			r.Attrs(func(a slog.Attr) bool {
				if v := a.Value.String(); strings.Contains(v, "proxyconnect") || strings.Contains(v, "secret") ||
					(a.Key == "reason" && !strings.HasPrefix(v, want)) {
					t.Errorf("log attribute %s=%q, want the client's reason %q", a.Key, v, want)
				}
				return true
			})
			return
		default:
			t.Fatal("no \"upstream failed\" log line")
		}
	}
}

// TestDeadHTTPParentIsLoggedAsTheClientSeesIt: with an HTTP parent that
// refuses connections, the log line names the parent as the error page
// does.
func TestDeadHTTPParentIsLoggedAsTheClientSeesIt(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := &url.URL{Scheme: "http", Host: dead.Addr().String(), User: url.UserPassword("u", "secret")}
	dead.Close()
	logs := make(chan slog.Record, 64)
	p := newTestProxy(t, Options{Logger: slog.New(recordHandler{logs})})
	p.h.SetUpstream(staticUpstream{deadURL}, deadURL.Host)
	want := "parent proxy " + deadURL.Host + " unreachable"
	if resp, body := p.get(t, "http://127.0.0.1:9/x"); resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(body, want) {
		t.Errorf("GET: %d %q, want 502 starting %q", resp.StatusCode, body, want)
	}
	checkUpstreamFailedLog(t, logs, want)
}
