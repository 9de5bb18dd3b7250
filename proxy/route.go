package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Upstream is what the proxy needs of a parent-proxy dialer
// (upstream.Dialer): where plain-HTTP requests go, how connections are
// dialed, and how CONNECT tunnels are opened.
type Upstream interface {
	// ProxyURL is the HTTP parent for req, or nil for direct.
	ProxyURL(req *http.Request) (*url.URL, error)
	// DialContext dials an origin or the HTTP parent itself.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTunnel opens a byte stream to addr for CONNECT.
	DialTunnel(ctx context.Context, network, addr string) (net.Conn, error)
}

// route is how requests leave the proxy under one upstream configuration:
// its own connection pools (pooled connections are tied to how they were
// dialed, so a new configuration gets new pools) and its tunnel dialer.
type route struct {
	// h1 fetches what fills ask for (GET and HEAD); tr sends the other
	// methods, and serves goproxy.
	h1     *h1client
	tr     *http.Transport
	tunnel func(ctx context.Context, network, addr string) (net.Conn, error)
	// tlsConf is the TLS client configuration for origins, cloned for
	// each connection.
	tlsConf *tls.Config
	// parent names the parent proxies for messages ("" when direct); it
	// never holds a credential.
	parent string
}

// newRoute builds the route for u (nil: direct, through dial).
func newRoute(u Upstream, parent string, dial func(ctx context.Context, network, addr string) (net.Conn, error), roots *x509.CertPool) *route {
	rt := &route{
		tunnel: dial,
		// Origins verified. ALPN offers HTTP/1.1 alone: neither the
		// Transport (on connections it did not make itself) nor h1client
		// speaks anything else.
		tlsConf: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, NextProtos: []string{"http/1.1"}},
	}
	originDial := dial
	if u != nil {
		originDial = u.DialContext
		rt.tunnel = u.DialTunnel
		rt.parent = parent
	}
	// Our own transport: never a proxy from the environment (HTTP_PROXY
	// pointing at ourselves would loop), no transparent gzip (bytes pass
	// through as the origin sent them), and a limit on every step. HTTPS
	// connections are made by dialTLS, as h1client's are, so that they
	// reach the origin the way CONNECT tunnels do (the Transport then
	// ignores TLSClientConfig and TLSHandshakeTimeout: dialTLS applies
	// both).
	rt.tr = &http.Transport{
		Proxy:                 nil,
		DialContext:           originDial,
		DialTLSContext:        rt.dialTLS,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	if u != nil {
		rt.tr.Proxy = func(req *http.Request) (*url.URL, error) {
			if req.URL.Scheme == "https" {
				// dialTLS reaches the origin through the parent
				// itself (CONNECT or SOCKS), as for h1client; were a
				// proxy named here, the Transport would CONNECT on
				// its own.
				return nil, nil
			}
			return u.ProxyURL(req)
		}
	}
	rt.h1 = &h1client{dial: originDial, dialTLS: rt.dialTLS}
	if u != nil {
		rt.h1.proxyURL = u.ProxyURL
	}
	return rt
}

// dialTLS is how HTTPS origins are reached (the Transport's
// DialTLSContext): a byte stream to addr opened as CONNECT tunnels are
// (directly or through the parent), and TLS to the origin over it. Errors are the tunnel dialer's and
// crypto/tls's own, so that errorReason names a failing parent (as for
// tunnels), an origin that timed out, or a certificate that could not be
// verified.
func (rt *route) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := rt.tunnel(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conf := rt.tlsConf.Clone()
	conf.ServerName = host
	tc := tls.Client(raw, conf)
	hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// SetUpstream sends new requests and tunnels through u (nil: direct);
// parent names it for messages and must not hold a credential. Transfers
// in flight finish on the route they started on; the old route's idle
// connections are closed. The cache is untouched.
func (h *Handler) SetUpstream(u Upstream, parent string) {
	old := h.routes.Swap(newRoute(u, parent, h.direct, h.opts.UpstreamRoots))
	if old != nil {
		old.closeIdle()
	}
}

// closeIdle closes the route's idle upstream connections.
func (rt *route) closeIdle() {
	rt.tr.CloseIdleConnections()
	rt.h1.closeIdle()
}

func (h *Handler) route() *route { return h.routes.Load() }

// roundTrip sends req on this route. An HTTP parent's 407 becomes an error
// naming the parent: the client cannot answer a challenge meant for us.
func (rt *route) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.tr.RoundTrip(req)
	return rt.rejected(req, resp, err)
}

// fetch sends a fill's GET or HEAD on this route, as roundTrip does, and
// returns the exchange the response came on as well.
func (rt *route) fetch(req *http.Request) (*http.Response, *h1exchange, error) {
	resp, ex, err := rt.h1.roundTrip(req)
	resp, err = rt.rejected(req, resp, err)
	return resp, ex, err
}

// rejected turns an HTTP parent's 407 to req into a parentRejectedError.
func (rt *route) rejected(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	if err != nil || resp.StatusCode != http.StatusProxyAuthRequired {
		return resp, err
	}
	if parent := rt.parentFor(req); parent != "" {
		resp.Body.Close()
		return nil, &parentRejectedError{parent: parent}
	}
	return resp, nil
}

// parentFor is the HOST:PORT of the HTTP parent req goes through, or "".
func (rt *route) parentFor(req *http.Request) string {
	if rt.tr.Proxy == nil {
		return ""
	}
	u, err := rt.tr.Proxy(req)
	if err != nil || u == nil {
		return ""
	}
	return u.Host
}
