package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
)

// intercepts reports whether a CONNECT to hostport is intercepted.
func (h *Handler) intercepts(hostport string) bool {
	return h.opts.Intercept != nil && h.opts.Intercept.Match(connectHost(hostport))
}

// connectHost is the host of a CONNECT target, without port or brackets.
func connectHost(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	return strings.Trim(host, "[]")
}

// leafConfig is goproxy's TLSConfig hook for intercepted tunnels: the
// client is shown a leaf certificate for the host it asked for, signed by
// the interception CA.
func (h *Handler) leafConfig(hostport string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
	cert, err := h.opts.Intercept.Leaf(connectHost(hostport))
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}, nil
}

// interceptedRequest does for a request read inside an intercepted tunnel
// what ServeHTTP does for the others: loop check, hop-by-hop fields, Via,
// and the bookkeeping for its access-log line. A non-nil response refuses
// the request.
func (h *Handler) interceptedRequest(r *http.Request) (*http.Request, *http.Response) {
	info := &reqInfo{outcome: "-", intercepted: true, start: time.Now()}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	if viaHops(r.Header) >= maxViaHops {
		info.outcome = "loop"
		resp := errorResponseFwd(r, http.StatusLoopDetected, "request for "+r.Host+" loops back to this proxy", "bypass")
		h.finishIntercepted(r, info, resp)
		return r, resp
	}
	removeHopByHop(r.Header)
	r.Header["Via"] = append(r.Header["Via"], viaValue)
	return r, nil
}

// roundTripIntercepted is roundTrip for requests inside intercepted tunnels,
// whose access-log line is written when goproxy closes the response body.
func (h *Handler) roundTripIntercepted(req *http.Request, pctx *goproxy.ProxyCtx) (*http.Response, error) {
	resp, err := h.roundTrip(req, pctx)
	if resp != nil {
		h.finishIntercepted(req, infoFrom(req.Context()), resp)
	}
	return resp, err
}

// finishIntercepted counts resp's body as it is written and logs the
// request when the body is closed.
func (h *Handler) finishIntercepted(req *http.Request, info *reqInfo, resp *http.Response) {
	resp.Body = &loggedBody{ReadCloser: resp.Body, done: func(n int64) {
		h.accessLog(req, resp.StatusCode, n, info, info.start)
		h.metrics.countRequest(info.outcome, info.source, n)
	}}
}

// loggedBody counts the bytes read from a response body and reports them
// once, on Close.
type loggedBody struct {
	io.ReadCloser
	n    int64
	done func(n int64)
}

func (b *loggedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *loggedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.done != nil {
		b.done(b.n)
		b.done = nil
	}
	return err
}
