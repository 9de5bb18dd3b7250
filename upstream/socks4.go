package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// socks4Dialer dials through a SOCKS4 or SOCKS4a parent; x/net has no
// client for either. The protocols:
// https://www.openssh.com/txt/socks4.protocol and
// https://www.openssh.com/txt/socks4a.protocol.
//
//	request: VN=4 CD=1 DSTPORT(2, big-endian) DSTIP(4) USERID NUL
//	         SOCKS4a: DSTIP 0.0.0.x (x != 0) and then HOSTNAME NUL
//	reply:   VN=0 CD DSTPORT(2) DSTIP(4); CD 90 granted, 91 rejected or
//	         failed, 92/93 identd failures
//
// SOCKS4 has no password, only a user id. SOCKS4 proper carries IPv4
// addresses only, so host names are resolved here; SOCKS4a lets the parent
// resolve them.
type socks4Dialer struct {
	kind    Kind   // SOCKS4 or SOCKS4a
	name    string // kind://host:port
	addr    string
	userID  string
	forward *net.Dialer
}

func newSOCKS4(p Parent, direct *net.Dialer) (*socks4Dialer, error) {
	if p.Password != "" {
		return nil, fmt.Errorf("%s parent %s: SOCKS4 has no password, only a user id", protocolName(p.Kind), p.Addr)
	}
	if strings.ContainsRune(p.User, 0) {
		return nil, fmt.Errorf("%s parent %s: the user id cannot contain NUL", protocolName(p.Kind), p.Addr)
	}
	return &socks4Dialer{kind: p.Kind, name: string(p.Kind) + "://" + p.Addr, addr: p.Addr, userID: p.User, forward: direct}, nil
}

// SOCKS4 reply codes (CD).
const (
	socks4Granted  = 90
	socks4Rejected = 91
)

var socks4Replies = map[byte]string{
	91: "request rejected or failed",
	92: "the parent cannot reach identd on this host",
	93: "identd reports a different user id",
}

func (s *socks4Dialer) DialContext(ctx context.Context, network, target string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("%s parent: target %q: %w", protocolName(s.kind), target, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%s parent: target %q: port must be 1-65535", protocolName(s.kind), target)
	}
	if strings.ContainsRune(host, 0) || len(host) > 255 {
		return nil, fmt.Errorf("%s parent: target %q: invalid host name", protocolName(s.kind), target)
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()

	req := []byte{4, 1, byte(port >> 8), byte(port)}
	hostname := "" // sent after the user id (SOCKS4a)
	ip, err := netip.ParseAddr(host)
	switch {
	case err == nil && ip.Unmap().Is4():
		req = append(req, ip.Unmap().AsSlice()...)
	case s.kind == SOCKS4a:
		req = append(req, 0, 0, 0, 1) // 0.0.0.x, x != 0: "hostname follows"
		hostname = host
	case err == nil:
		return nil, fmt.Errorf("SOCKS4 parent %s cannot reach IPv6 address %s (use socks4a or socks5)", s.addr, host)
	default:
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s for the SOCKS4 parent, which needs an IPv4 address (socks4a or socks5 let the parent resolve): %w", host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("%s has no IPv4 address, which a SOCKS4 parent needs (use socks4a or socks5)", host)
		}
		req = append(req, ips[0].Unmap().AsSlice()...)
	}
	req = append(append(req, s.userID...), 0)
	if hostname != "" {
		req = append(append(req, hostname...), 0)
	}

	c, err := s.forward.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, &ParentError{Parent: s.name, Op: "dial", Err: err}
	}
	var reply [8]byte
	err = handshake(ctx, c, func() error {
		if _, err := c.Write(req); err != nil {
			return err
		}
		_, err := io.ReadFull(c, reply[:])
		return err
	})
	pe := &ParentError{Parent: s.name, Target: target}
	switch {
	case err != nil:
		pe.Op, pe.Err = "handshake", err
	case reply[0] != 0 && reply[0] != 4: // 4: some servers echo VN
		pe.Op = "handshake"
		pe.Reply = fmt.Sprintf("unexpected reply version %d (is it a SOCKS4 server?)", reply[0])
	case reply[1] == socks4Granted:
		return c, nil
	default:
		pe.Op, pe.ReplyCode, pe.Reply = "connect", int(reply[1]), socks4Replies[reply[1]]
	}
	c.Close()
	return nil, pe
}
