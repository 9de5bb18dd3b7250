package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/proxy"
)

// handshakeTimeout bounds a parent handshake (the dial of the parent
// included) when the caller's context has no earlier deadline; the standard
// library's Transport allows its proxy CONNECT one minute too.
const handshakeTimeout = time.Minute

// Dialer dials origins and tunnels according to a Config. Safe for
// concurrent use; immutable.
type Dialer struct {
	direct  *net.Dialer
	noProxy noProxyList

	// httpParent is the HTTP parent (a copy), or nil; httpURL is its URL
	// with credentials, for http.Transport.Proxy.
	httpParent *Parent
	httpURL    *url.URL

	// socks dials through the SOCKS parent, or is nil; socksName is
	// kind://host:port.
	socks     proxy.ContextDialer
	socksName string
}

var _ proxy.ContextDialer = (*Dialer)(nil)

// NewDialer validates cfg (kinds, addrs, SOCKS5 user 1-255 bytes / password
// <=255, SOCKS4 has no password) and builds the dialer. direct is used for
// every direct connection (nil: &net.Dialer{Timeout: 10*time.Second,
// KeepAlive: 30*time.Second}), including the dials of the parents
// themselves.
func NewDialer(cfg Config, direct *net.Dialer) (*Dialer, error) {
	if direct == nil {
		direct = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	}
	d := &Dialer{direct: direct}
	np, err := parseNoProxy(cfg.NoProxy)
	if err != nil {
		return nil, fmt.Errorf("noProxy: %w", err)
	}
	d.noProxy = np

	if cfg.HTTP != nil {
		p := *cfg.HTTP
		if err := checkParent(p, "HTTP", HTTP); err != nil {
			return nil, err
		}
		// RFC 7617 §2: the user-id cannot contain a colon, and neither
		// part may contain control characters.
		if strings.Contains(p.User, ":") {
			return nil, fmt.Errorf("HTTP parent %s: the user name cannot contain ':' (Basic authentication, RFC 7617)", p.Addr)
		}
		if hasControl(p.User) || hasControl(p.Password) {
			return nil, fmt.Errorf("HTTP parent %s: the user name and password cannot contain control characters", p.Addr)
		}
		d.httpParent = &p
		d.httpURL = &url.URL{Scheme: "http", Host: p.Addr}
		if p.User != "" || p.Password != "" {
			d.httpURL.User = url.UserPassword(p.User, p.Password)
		}
	}

	if cfg.SOCKS != nil {
		p := *cfg.SOCKS
		if err := checkParent(p, "SOCKS", SOCKS4, SOCKS4a, SOCKS5); err != nil {
			return nil, err
		}
		d.socksName = string(p.Kind) + "://" + p.Addr
		switch p.Kind {
		case SOCKS5:
			s, err := newSOCKS5(p, direct)
			if err != nil {
				return nil, err
			}
			d.socks = s
		default:
			s, err := newSOCKS4(p, direct)
			if err != nil {
				return nil, err
			}
			d.socks = s
		}
	}
	return d, nil
}

// checkParent validates the kind and HOST:PORT of a parent; what names the
// setting in messages.
func checkParent(p Parent, what string, kinds ...Kind) error {
	ok := false
	for _, k := range kinds {
		ok = ok || p.Kind == k
	}
	if !ok {
		want := make([]string, len(kinds))
		for i, k := range kinds {
			want[i] = string(k)
		}
		return fmt.Errorf("%s parent %s: unsupported kind %q (want %s)", what, p.Addr, p.Kind, strings.Join(want, ", "))
	}
	host, port, err := net.SplitHostPort(p.Addr)
	if err != nil || host == "" {
		return fmt.Errorf("%s parent address %q: want HOST:PORT (IPv6 hosts in brackets)", what, p.Addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%s parent address %q: port must be 1-65535", what, p.Addr)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// ProxyURL is for http.Transport.Proxy: the HTTP parent's URL
// (http://user:pass@host:port, so that the Transport sends
// Proxy-Authorization: Basic to the parent only, on forwarded requests and
// on its own CONNECTs) for requests whose host is not in NoProxy; nil
// (direct) otherwise or when there is no HTTP parent. Never reads the
// environment.
func (d *Dialer) ProxyURL(req *http.Request) (*url.URL, error) {
	if d.httpURL == nil || (req.URL != nil && d.noProxy.match(req.URL.Hostname())) {
		return nil, nil
	}
	u := *d.httpURL // a copy: callers may not change ours
	return &u, nil
}

// DialContext is for http.Transport.DialContext: it dials addr (an origin,
// or the HTTP parent itself when the Transport uses it) through the SOCKS
// parent when one is set and addr is not in NoProxy (the HTTP parent's own
// address always goes through SOCKS when both are set: Polipo's layering),
// directly otherwise.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	isParent := d.isHTTPParent(addr)
	if d.socks != nil && (isParent || !d.noProxy.match(hostOf(addr))) {
		return d.socks.DialContext(ctx, network, addr)
	}
	c, err := d.direct.DialContext(ctx, network, addr)
	if err != nil && isParent {
		return nil, &ParentError{Parent: "http://" + d.httpParent.Addr, Op: "dial", Err: err}
	}
	return c, err
}

// DialTunnel is for CONNECT tunnels (and HTTPS fetches): a raw byte stream
// to addr. A host in NoProxy is dialed directly; otherwise through the HTTP
// parent (itself reached with DialContext, so through the SOCKS parent when
// both are set) with a CONNECT, else through the SOCKS parent, else
// directly.
func (d *Dialer) DialTunnel(ctx context.Context, network, addr string) (net.Conn, error) {
	switch {
	case d.noProxy.match(hostOf(addr)):
		return d.direct.DialContext(ctx, network, addr)
	case d.httpParent != nil:
		ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", d.httpParent.Addr)
		if err != nil {
			return nil, err
		}
		return connectThrough(ctx, c, d.httpParent, addr)
	case d.socks != nil:
		return d.socks.DialContext(ctx, network, addr)
	default:
		return d.direct.DialContext(ctx, network, addr)
	}
}

// String returns the parents in use, for logs and the status page (no
// credentials), e.g. "http://10.0.0.2:3128 via socks5://10.0.0.3:1080", or
// "direct".
func (d *Dialer) String() string {
	switch {
	case d.httpParent != nil && d.socks != nil:
		return "http://" + d.httpParent.Addr + " via " + d.socksName
	case d.httpParent != nil:
		return "http://" + d.httpParent.Addr
	case d.socks != nil:
		return d.socksName
	default:
		return "direct"
	}
}

// isHTTPParent reports whether addr is the HTTP parent's HOST:PORT, as the
// Transport spells it when it dials the proxy (it may differ in case).
func (d *Dialer) isHTTPParent(addr string) bool {
	if d.httpParent == nil {
		return false
	}
	h1, p1, err1 := net.SplitHostPort(addr)
	h2, p2, err2 := net.SplitHostPort(d.httpParent.Addr)
	return err1 == nil && err2 == nil && p1 == p2 && strings.EqualFold(h1, h2)
}

// hostOf returns the host of HOST:PORT, or addr itself when it has no port.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// handshake runs fn, an exchange with a parent over c, under ctx: ctx's
// deadline is c's deadline for the duration, and cancelling ctx closes c,
// which unblocks fn. The deadline is cleared when fn succeeds.
func handshake(ctx context.Context, c net.Conn, fn func() error) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := c.SetDeadline(dl); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := fn()
	if !stop() {
		// ctx ended first and c is closed: whatever fn saw, the cause is ctx.
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// errParentDial marks a failed dial of a parent itself, so that the SOCKS5
// wrapper can tell "unreachable" from a failed handshake without reading
// x/net's error text.
type errParentDial struct{ err error }

func (e *errParentDial) Error() string { return e.err.Error() }
func (e *errParentDial) Unwrap() error { return e.err }

// parentForward dials a SOCKS parent for x/net's SOCKS5 client.
type parentForward struct{ d *net.Dialer }

var _ proxy.ContextDialer = parentForward{}

func (f parentForward) Dial(network, addr string) (net.Conn, error) {
	return f.DialContext(context.Background(), network, addr)
}

func (f parentForward) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := f.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &errParentDial{err}
	}
	return c, nil
}

// unwrapParentDial returns the dial error inside err, if err is one.
func unwrapParentDial(err error) (error, bool) {
	var pd *errParentDial
	if errors.As(err, &pd) {
		return pd.err, true
	}
	return nil, false
}
