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
// its own transport (pooled connections are tied to how they were dialed,
// so a new configuration gets a new pool) and its tunnel dialer.
type route struct {
	tr     *http.Transport
	tunnel func(ctx context.Context, network, addr string) (net.Conn, error)
	// parent names the parent proxies for messages ("" when direct); it
	// never holds a credential.
	parent string
}

// newRoute builds the route for u (nil: direct, through dial).
func newRoute(u Upstream, parent string, dial func(ctx context.Context, network, addr string) (net.Conn, error), roots *x509.CertPool) *route {
	// Our own transport: never a proxy from the environment (HTTP_PROXY
	// pointing at ourselves would loop), origins verified, no transparent
	// gzip (bytes pass through as the origin sent them), and a limit on
	// every step.
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	rt := &route{tr: tr, tunnel: dial}
	if u != nil {
		tr.Proxy = u.ProxyURL
		tr.DialContext = u.DialContext
		rt.tunnel = u.DialTunnel
		rt.parent = parent
	}
	return rt
}

// SetUpstream sends new requests and tunnels through u (nil: direct);
// parent names it for messages and must not hold a credential. Transfers
// in flight finish on the route they started on; the old route's idle
// connections are closed. The cache is untouched.
func (h *Handler) SetUpstream(u Upstream, parent string) {
	old := h.routes.Swap(newRoute(u, parent, h.direct, h.opts.UpstreamRoots))
	if old != nil {
		old.tr.CloseIdleConnections()
	}
}

func (h *Handler) route() *route { return h.routes.Load() }

// roundTrip sends req on this route. An HTTP parent's 407 becomes an error
// naming the parent: the client cannot answer a challenge meant for us.
func (rt *route) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.tr.RoundTrip(req)
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
