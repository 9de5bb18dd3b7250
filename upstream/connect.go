package upstream

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxConnectReplyHead bounds the CONNECT reply head read from an HTTP
// parent, so that a broken or hostile parent cannot make us buffer without
// limit.
const maxConnectReplyHead = 32 << 10

// connectThrough asks the HTTP parent p, connected as c, for a tunnel to
// target (RFC 9110 §9.3.6) and returns the tunnel. It closes c on failure.
// Proxy-Authorization is built here for this request only and never kept in
// shared state (golang/go#36431: a header shared between dials leaked across
// proxies).
func connectThrough(ctx context.Context, c net.Conn, p *Parent, target string) (net.Conn, error) {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: make(http.Header),
	}
	if p.User != "" || p.Password != "" {
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(p.User+":"+p.Password)))
	}

	var resp *http.Response
	var early []byte
	lr := &io.LimitedReader{R: c, N: maxConnectReplyHead}
	err := handshake(ctx, c, func() error {
		if err := req.Write(c); err != nil {
			return err
		}
		br := bufio.NewReader(lr)
		var err error
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			if lr.N == 0 {
				return fmt.Errorf("reply head larger than %d bytes", maxConnectReplyHead)
			}
			return err
		}
		// Bytes the parent sent right after the head belong to the tunnel.
		if n := br.Buffered(); n > 0 {
			early, _ = br.Peek(n)
			early = append([]byte(nil), early...)
		}
		return nil
	})
	pe := &ParentError{Parent: "http://" + p.Addr, Target: target}
	if err != nil {
		c.Close()
		pe.Op, pe.Err = "handshake", err
		return nil, pe
	}
	if resp.StatusCode/100 == 2 {
		if len(early) > 0 {
			return &prefixConn{Conn: c, buf: early}, nil
		}
		return c, nil
	}
	c.Close()
	pe.StatusCode = resp.StatusCode
	pe.Reply = oneLine(resp.Status)
	switch {
	case resp.StatusCode == http.StatusProxyAuthRequired && req.Header.Get("Proxy-Authorization") != "":
		pe.Op = "auth"
	case resp.StatusCode == http.StatusProxyAuthRequired:
		pe.Op = "auth-required"
	default:
		pe.Op = "connect"
	}
	return nil, pe
}

// oneLine makes a status line from a parent fit in a log line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

// prefixConn serves the bytes an HTTP parent sent after its CONNECT reply
// before reading on from the connection. It embeds net.Conn on purpose: it
// is a net.Conn with a different Read.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the tunnel when the connection supports it, so that
// a tunnel copy can pass on one side's EOF.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
