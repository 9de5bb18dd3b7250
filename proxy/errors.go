package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// errorStatus maps an upstream failure to the status the client gets:
// timeouts are 504 (RFC 9110 §15.6.5), every other failure to reach or read
// the origin is 502 (§15.6.3). Polipo and Squid answer the same way; goproxy
// would say 500.
func errorStatus(err error) int {
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// errorReason is the one-line reason the client reads: what failed and where.
func errorReason(host string, err error) string {
	if errorStatus(err) == http.StatusGatewayTimeout {
		return fmt.Sprintf("origin %s timed out", host)
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		return fmt.Sprintf("origin %s: cannot resolve %s", host, dnsErr.Name)
	}
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" {
		return fmt.Sprintf("origin %s unreachable: %v", host, opErr.Err)
	}
	return fmt.Sprintf("origin %s failed: %v", host, err)
}

// errorResponse builds a response the proxy makes itself: the status, a
// one-line text body, and the proxy's Via and Cache-Status.
func errorResponse(req *http.Request, status int, reason string) *http.Response {
	return errorResponseFwd(req, status, reason, "miss")
}

// errorResponseFwd is errorResponse with the Cache-Status fwd value given:
// "miss" when the origin was tried, "bypass" when the proxy refused.
func errorResponseFwd(req *http.Request, status int, reason, fwd string) *http.Response {
	body := reason + "\n"
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("Via", viaValue)
	h.Set("Cache-Status", cacheStatusName+"; fwd="+fwd+"; detail=proxy-error")
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// writeError answers w with a proxy-made error.
func writeError(w http.ResponseWriter, status int, reason string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Via", viaValue)
	h.Set("Cache-Status", cacheStatusName+"; fwd=bypass; detail=proxy-error")
	w.WriteHeader(status)
	io.WriteString(w, reason+"\n")
}
