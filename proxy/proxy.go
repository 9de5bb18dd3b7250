package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stageproxy/stageproxy/cache"
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ Lo, Hi int }

// defaultTunnelPorts is Polipo's tunnelAllowedPorts.
var defaultTunnelPorts = []PortRange{{22, 22}, {80, 80}, {109, 110}, {143, 143}, {443, 443}, {873, 873}, {993, 993}, {995, 995}, {2401, 2401}, {5222, 5223}, {9418, 9418}}

// Timeouts on each network step. Hijacked tunnels are not covered by the
// http.Server's timeouts, hence tunnelIdle.
const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 60 * time.Second
	idleConnTimeout       = 90 * time.Second
	defaultIdleTimeout    = 60 * time.Second // no body byte from upstream for this long
	tunnelIdle            = 5 * time.Minute
)

// Options configures a Handler. The zero value of every field but Cache is
// usable.
type Options struct {
	// Cache stores responses. Required.
	Cache *cache.Cache
	// Logger receives the access log (one line per request, at info level)
	// and errors. Nil discards.
	Logger *slog.Logger
	// AllowedClients lists who may use the proxy. Empty means loopback only.
	AllowedClients []netip.Prefix
	// TunnelAllowedPorts lists the ports CONNECT may reach. Empty means
	// Polipo's default list.
	TunnelAllowedPorts []PortRange
	// MaxObjectSize is the largest body stored; larger ones stream through.
	// Zero means 32 MiB.
	MaxObjectSize int64
	// ServeStaleOnError serves a stale stored response when the origin
	// cannot be reached or answers 5xx (Polipo's relaxTransparency =
	// maybe), unless the response forbids it (must-revalidate).
	ServeStaleOnError bool
	// ListenAddrs are the addresses the proxy listens on, so that a request
	// addressed to the proxy through itself is refused (508).
	ListenAddrs []string
	// DialContext dials origins. Nil means a net.Dialer with a 10 s timeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Registry receives the proxy's metrics and is what /metrics serves.
	// Nil means a private registry.
	Registry *prometheus.Registry
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Status, when set, returns extra lines (configuration without secrets)
	// for the status page.
	Status func() [][2]string
	// IdleTimeout bounds how long an upstream body may send nothing. Zero
	// means 60 s.
	IdleTimeout time.Duration
	// ClientWriteTimeout bounds how long one write to a client may block
	// (a client that stopped reading). Zero means 60 s.
	ClientWriteTimeout time.Duration
	// UpstreamRoots are the roots HTTPS origins are verified against. Nil
	// means the system roots. Verification is never turned off.
	UpstreamRoots *x509.CertPool
	// Intercept, when set, opens CONNECT tunnels to the hosts it matches
	// (TLS interception) so that the requests inside go through the cache.
	// Every other tunnel is passed through byte for byte.
	Intercept *Intercept
}

// Intercept is what TLS interception needs: which hosts, and a leaf
// certificate for each (mitm.CA.Leaf).
type Intercept struct {
	// Match reports whether CONNECTs to host (no port) are intercepted.
	Match func(host string) bool
	// Leaf returns the certificate presented to clients for host.
	Leaf func(host string) (*tls.Certificate, error)
}

// Handler is the proxy's http.Handler.
type Handler struct {
	opts               Options
	gp                 *goproxy.ProxyHttpServer
	direct             func(ctx context.Context, network, addr string) (net.Conn, error)
	routes             atomic.Pointer[route] // the upstream configuration in force
	cache              *cache.Cache
	log                *slog.Logger
	now                func() time.Time
	metrics            *metrics
	admin              http.Handler
	maxObject          int64
	idleTimeout        time.Duration
	clientWriteTimeout time.Duration
	clients            []netip.Prefix
	tunnelPorts        []PortRange
	self               selfAddrs
	started            time.Time

	tunnels tunnelSet

	mu      sync.Mutex
	flights map[string]*flight // protects: mu; fills under way by primary key
}

var _ http.Handler = (*Handler)(nil)

// New builds a Handler from opts.
func New(opts Options) (*Handler, error) {
	if opts.Cache == nil {
		return nil, errors.New("proxy: Options.Cache is required")
	}
	h := &Handler{
		opts:        opts,
		cache:       opts.Cache,
		log:         opts.Logger,
		now:         opts.Now,
		maxObject:   opts.MaxObjectSize,
		idleTimeout: opts.IdleTimeout,
		clients:     opts.AllowedClients,
		tunnelPorts: opts.TunnelAllowedPorts,
		flights:     map[string]*flight{},
		started:     time.Now(),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.maxObject <= 0 {
		h.maxObject = 32 << 20
	}
	if h.idleTimeout <= 0 {
		h.idleTimeout = defaultIdleTimeout
	}
	if h.clientWriteTimeout = opts.ClientWriteTimeout; h.clientWriteTimeout <= 0 {
		h.clientWriteTimeout = defaultIdleTimeout
	}
	if len(h.clients) == 0 {
		h.clients = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if len(h.tunnelPorts) == 0 {
		h.tunnelPorts = defaultTunnelPorts
	}
	self, err := newSelfAddrs(opts.ListenAddrs)
	if err != nil {
		return nil, err
	}
	h.self = self
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	h.metrics = newMetrics(reg, h.cache)

	dial := opts.DialContext
	if dial == nil {
		d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	h.direct = dial
	h.routes.Store(newRoute(nil, "", dial, opts.UpstreamRoots))

	gp := goproxy.NewProxyHttpServer()
	gp.Tr = h.route().tr // goproxy's own uses; our round trips pick the route per request
	gp.ConnectDial = nil // goproxy derived it from HTTPS_PROXY
	gp.ConnectDialWithReq = func(req *http.Request, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(req.Context(), dialTimeout)
		defer cancel()
		c, err := h.route().tunnel(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		info := infoFrom(req.Context())
		info.status, info.tunnel = http.StatusOK, true
		// The tunnel outlives the request: its access-log line is
		// written when it closes, with what it carried and how long.
		return h.tunnels.open(c, func(read int64) {
			h.accessLog(req, http.StatusOK, read, info, info.start)
		}), nil
	}
	gp.ConnectionErrHandler = h.connectError
	gp.Verbose = false
	gp.Logger = debugLogger{h.log}
	gp.KeepAcceptEncoding = true
	gp.KeepHeader = false
	gp.NonproxyHandler = http.HandlerFunc(h.serveAdmin)
	gp.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		if _, ok := r.Context().Value(infoKey{}).(*reqInfo); !ok {
			// A request read inside an intercepted tunnel: it did not
			// pass through ServeHTTP, so do its part here.
			var resp *http.Response
			if r, resp = h.interceptedRequest(r); resp != nil {
				return r, resp
			}
		}
		if infoFrom(r.Context()).intercepted {
			ctx.RoundTripper = goproxy.RoundTripperFunc(h.roundTripIntercepted)
		} else {
			ctx.RoundTripper = goproxy.RoundTripperFunc(h.roundTripChecked)
		}
		return r, nil
	})
	gp.OnRequest().HandleConnectFunc(h.handleConnect)
	h.gp = gp
	h.admin = h.adminMux(reg)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &reqInfo{outcome: "-", start: start}
	lw := &logWriter{ResponseWriter: w, writeTimeout: h.clientWriteTimeout}
	defer lw.clearDeadline()
	defer func() {
		if info.tunnel {
			return // logged when the tunnel closes
		}
		status := lw.status
		if status == 0 {
			status = info.status // a CONNECT: goproxy wrote on the raw connection
		}
		h.accessLog(r, status, lw.bytes, info, start)
	}()

	if !h.allowed(r.RemoteAddr) {
		h.metrics.countRequest("forbidden", "", 0)
		info.outcome = "forbidden"
		writeError(lw, http.StatusForbidden, "client "+hostOnly(r.RemoteAddr)+" is not in allowedClients")
		return
	}
	if ambiguousFraming(r.Context()) {
		info.outcome = "bad-request"
		lw.Header().Set("Connection", "close")
		writeError(lw, http.StatusBadRequest, "request has both Content-Length and Transfer-Encoding (RFC 9112 §6.3); refused")
		return
	}
	if r.Method != http.MethodConnect && !r.URL.IsAbs() {
		info.outcome = "admin"
		h.serveAdmin(lw, r)
		return
	}
	if reason := badTarget(r); reason != "" {
		info.outcome = "bad-request"
		h.metrics.countRequest("bad-request", "", 0)
		writeError(lw, http.StatusBadRequest, reason)
		return
	}
	if h.self.match(r) || viaHops(r.Header) >= maxViaHops {
		info.outcome = "loop"
		h.metrics.countRequest("loop", "", 0)
		writeError(lw, http.StatusLoopDetected, "request for "+r.Host+" loops back to this proxy")
		return
	}
	removeHopByHop(r.Header)
	r.Header["Via"] = append(r.Header["Via"], receivedVia(r))
	if e, age := h.freshFromCache(r, info); e != nil {
		// A fresh hit needs nothing of goproxy's: write it here, saving
		// its per-request work on the path that must be fastest.
		h.writeHit(lw, r, e, age)
	} else {
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		h.gp.ServeHTTP(lw, r)
	}
	h.metrics.countRequest(info.outcome, info.source, lw.bytes)
	if info.bodyErr != nil {
		// goproxy logs a failed body copy and returns as if it were
		// done, and net/http would then end a chunked body with its
		// last chunk, or give a small one a Content-Length: a download
		// cut short upstream would reach the client whole. Aborting
		// closes the connection with the body unfinished instead.
		h.log.Warn("response body failed; closing the client connection", "url", r.URL.Redacted(), "err", info.bodyErr)
		panic(http.ErrAbortHandler)
	}
}

// roundTripChecked is roundTrip for requests ServeHTTP passes to goproxy:
// it notes in the request's reqInfo when the response body fails, so that
// ServeHTTP can abort the response (see there).
func (h *Handler) roundTripChecked(req *http.Request, pctx *goproxy.ProxyCtx) (*http.Response, error) {
	resp, err := h.roundTrip(req, pctx)
	if resp != nil && resp.Body != nil && resp.Body != http.NoBody {
		resp.Body = &checkedBody{ReadCloser: resp.Body, info: infoFrom(req.Context())}
	}
	return resp, err
}

// checkedBody records in info the first error other than io.EOF that
// reading it, or writing it out with WriteTo, returns.
type checkedBody struct {
	io.ReadCloser
	info *reqInfo
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.info.bodyErr == nil {
		b.info.bodyErr = err
	}
	return n, err
}

// WriteTo keeps the body's own WriteTo (a fill's reader hands its buffer
// over in large writes), or copies through Read.
func (b *checkedBody) WriteTo(w io.Writer) (int64, error) {
	var n int64
	var err error
	if wt, ok := b.ReadCloser.(io.WriterTo); ok {
		n, err = wt.WriteTo(w)
	} else {
		n, err = io.Copy(w, struct{ io.Reader }{b.ReadCloser})
	}
	if err != nil && b.info.bodyErr == nil {
		b.info.bodyErr = err
	}
	return n, err
}

// Close releases idle upstream connections.
func (h *Handler) Close() { h.route().closeIdle() }

// allowed reports whether the client at remoteAddr may use the proxy.
func (h *Handler) allowed(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range h.clients {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// badTarget says what is wrong with the target of a proxied request, or
// "" when nothing is: a target without a host would be dialled on the
// proxy's own machine (CONNECT :22, http:///x), and other schemes than
// http and https, or a port out of range, cannot be fetched.
func badTarget(r *http.Request) string {
	var host, port string
	if r.Method == http.MethodConnect {
		h, p, err := net.SplitHostPort(r.Host)
		if err != nil {
			return "CONNECT target " + strconv.Quote(r.Host) + " is not HOST:PORT"
		}
		host, port = h, p
	} else {
		switch r.URL.Scheme {
		case "http", "https":
		default:
			return "scheme " + strconv.Quote(r.URL.Scheme) + " is not proxied (only http and https)"
		}
		host, port = r.URL.Hostname(), r.URL.Port()
	}
	if host == "" {
		return "request target " + strconv.Quote(r.RequestURI) + " has no host"
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "port " + strconv.Quote(port) + " in " + strconv.Quote(r.RequestURI) + " is not a port number (1-65535)"
		}
	}
	return ""
}

func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

// handleConnect lets CONNECT through to allowed ports only.
func (h *Handler) handleConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	_, portStr, _ := net.SplitHostPort(host) // HOST:PORT: badTarget refused the rest
	if h.intercepts(host) {
		// Not held to tunnelAllowedPorts: the proxy speaks HTTP to this
		// origin itself, as it does for plain-HTTP requests to any port.
		info := infoFrom(ctx.Req.Context())
		info.status, info.outcome = http.StatusOK, "intercepted"
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: h.leafConfig}, host
	}
	port, err := strconv.Atoi(portStr)
	if err == nil && h.tunnelAllowed(port) {
		return goproxy.OkConnect, host
	}
	info := infoFrom(ctx.Req.Context())
	info.status, info.outcome = http.StatusForbidden, "forbidden"
	ctx.Resp = errorResponseFwd(ctx.Req, http.StatusForbidden, fmt.Sprintf("CONNECT to port %s is not allowed (tunnelAllowedPorts)", portStr), "bypass")
	ctx.Resp.Header.Set("Connection", "close")
	return goproxy.RejectConnect, host
}

func (h *Handler) tunnelAllowed(port int) bool {
	for _, r := range h.tunnelPorts {
		if port >= r.Lo && port <= r.Hi {
			return true
		}
	}
	return false
}

// connectError answers a CONNECT whose dial failed: 504 on a timeout, 502
// otherwise, with a one-line reason.
func (h *Handler) connectError(w io.Writer, ctx *goproxy.ProxyCtx, err error) {
	status := errorStatus(err)
	info := infoFrom(ctx.Req.Context())
	info.status, info.outcome = status, "error"
	h.metrics.upstreamErrors.Inc()
	reason := errorReason(ctx.Req.URL.Host, "", err) + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nVia: %s\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(reason), viaValue, reason)
}

// debugLogger sends goproxy's own messages to the debug level.
type debugLogger struct{ l *slog.Logger }

func (d debugLogger) Printf(format string, v ...any) {
	d.l.Debug("goproxy", "msg", fmt.Sprintf(format, v...))
}
