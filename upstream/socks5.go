package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/net/proxy"
)

// socks5Dialer dials through a SOCKS5 parent (RFC 1928, username/password
// RFC 1929) with x/net's client, and turns its errors into ParentErrors.
// Host names go to the parent unresolved (socks5h).
type socks5Dialer struct {
	name   string // socks5://host:port
	authed bool   // credentials are configured
	d      proxy.ContextDialer
}

func newSOCKS5(p Parent, direct *net.Dialer) (*socks5Dialer, error) {
	var auth *proxy.Auth
	if p.User != "" || p.Password != "" {
		// RFC 1929 §2: ULEN and PLEN are one byte each, and x/net refuses
		// an empty user name.
		if len(p.User) < 1 || len(p.User) > 255 {
			return nil, fmt.Errorf("SOCKS5 parent %s: the user name must be 1-255 bytes", p.Addr)
		}
		if len(p.Password) > 255 {
			return nil, fmt.Errorf("SOCKS5 parent %s: the password must be at most 255 bytes", p.Addr)
		}
		auth = &proxy.Auth{User: p.User, Password: p.Password}
	}
	xd, err := proxy.SOCKS5("tcp", p.Addr, auth, parentForward{direct})
	if err != nil {
		return nil, fmt.Errorf("SOCKS5 parent %s: %w", p.Addr, err)
	}
	cd, ok := xd.(proxy.ContextDialer)
	if !ok {
		return nil, fmt.Errorf("SOCKS5 parent %s: x/net's dialer lacks DialContext", p.Addr)
	}
	return &socks5Dialer{name: "socks5://" + p.Addr, authed: auth != nil, d: cd}, nil
}

func (s *socks5Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	c, err := s.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, s.parentError(ctx, addr, err)
	}
	return c, nil
}

// socks5Replies are the RFC 1928 §6 reply texts, as x/net spells them in its
// errors ("unknown error " + text), indexed by reply code.
var socks5Replies = [...]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// parentError maps an error of x/net's SOCKS5 client to a ParentError.
// x/net's errors are plain text: the text only picks the phrase and Op; the
// raw error stays in Err.
func (s *socks5Dialer) parentError(ctx context.Context, target string, err error) error {
	pe := &ParentError{Parent: s.name, Target: target, Err: err}
	if derr, ok := unwrapParentDial(err); ok {
		pe.Op, pe.Target, pe.Err = "dial", "", derr
		return pe
	}
	raw := err
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		raw = op.Err
	}
	text := raw.Error()
	pe.Reply = text
	switch {
	case text == "username/password authentication failed":
		pe.Op = "auth"
	case text == "no acceptable authentication methods" && !s.authed:
		pe.Op = "auth-required"
	case strings.HasPrefix(text, "unknown error "):
		pe.Op = "connect"
		pe.Reply = strings.TrimPrefix(text, "unknown error ")
		for code, r := range socks5Replies {
			if r != "" && r == pe.Reply {
				pe.ReplyCode = code
			}
		}
		if n, ok := strings.CutPrefix(pe.Reply, "unknown code: "); ok {
			pe.ReplyCode, _ = strconv.Atoi(n)
		}
	default:
		pe.Op = "handshake"
		if ctx.Err() != nil {
			// x/net reports a cancelled handshake as an I/O timeout;
			// say what really happened.
			pe.Err = ctx.Err()
		}
	}
	return pe
}
