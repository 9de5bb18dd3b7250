package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/stageproxy/stageproxy/upstream"
)

// errorStatus maps an upstream failure to the status the client gets:
// timeouts are 504 (RFC 9110 §15.6.5), every other failure to reach or read
// the origin or a parent proxy is 502 (§15.6.3). Polipo and Squid answer the
// same way; goproxy would say 500.
func errorStatus(err error) int {
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	// Any error in the chain that says it timed out: net.Error, and the
	// parent-proxy errors of package upstream.
	if te, ok := errors.AsType[interface {
		error
		Timeout() bool
	}](err); ok && te.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// parentRejectedError is an HTTP parent's 407 to a request the proxy
// forwarded: the client cannot answer a challenge meant for the proxy, so
// it gets a 502 that says what is wrong (never the parent's 407).
type parentRejectedError struct{ parent string }

func (e *parentRejectedError) Error() string {
	return "parent proxy " + e.parent + " rejected the credentials (407)"
}

// errorReason is the one-line reason the client reads: what failed and
// where. parent is the HTTP parent the request went through ("" when
// direct).
func errorReason(host, parent string, err error) string {
	if pr, ok := errors.AsType[*parentRejectedError](err); ok {
		return pr.Error()
	}
	if pe, ok := errors.AsType[*upstream.ParentError](err); ok {
		return pe.Error() // names the parent, never a credential
	}
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "proxyconnect" {
		if errorStatus(err) == http.StatusGatewayTimeout {
			return fmt.Sprintf("parent proxy %s timed out", parent)
		}
		return fmt.Sprintf("parent proxy %s unreachable: %v", parent, opErr.Err)
	}
	if ve, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		// Never retried without verification: the operator adds the
		// origin's CA with --upstream-ca instead.
		return fmt.Sprintf("origin %s: TLS certificate could not be verified: %v", host, ve.Err)
	}
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
