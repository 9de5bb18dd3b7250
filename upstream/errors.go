package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// ParentError reports that a parent proxy could not be reached or refused
// what was asked of it. Its Error is one line naming the parent (never its
// credentials), the target and what the operator can act on, e.g.
//
//	parent proxy 10.0.0.2:3128 rejected the credentials (407)
//	parent proxy 10.0.0.2:3128 refused the CONNECT to example.org:443 (403 Forbidden)
//	parent proxy socks5://10.0.0.3:1080 unreachable: connect: connection refused
//	SOCKS5 parent 10.0.0.3:1080 refused example.org:443: connection not allowed by ruleset (reply 2)
//	SOCKS5 parent 10.0.0.3:1080 rejected the username/password
//	SOCKS4a parent 10.0.0.4:1080 rejected the request for example.org:443 (reply 91)
//
// Use errors.As to get at the fields, Timeout to tell a timeout (504) from
// any other parent failure (502), and errors.Is(err, context.Canceled) for a
// client that went away.
type ParentError struct {
	// Parent is the parent as kind://host:port, e.g. "http://10.0.0.2:3128"
	// or "socks5://10.0.0.3:1080". It never holds credentials.
	Parent string
	// Op is the step that failed:
	//   "dial"          the parent could not be reached;
	//   "auth"          the parent rejected the configured credentials;
	//   "auth-required" the parent wants credentials and none are configured;
	//   "connect"       the parent refused to reach Target;
	//   "handshake"     the exchange with the parent failed otherwise
	//                   (timeout, closed connection, protocol error).
	Op string
	// Target is the HOST:PORT asked of the parent; empty for Op "dial".
	Target string
	// StatusCode is the HTTP parent's reply status, 0 otherwise.
	StatusCode int
	// ReplyCode is the SOCKS reply code (SOCKS5 REP, SOCKS4 CD), 0 otherwise.
	ReplyCode int
	// Reply is the parent's answer as text: the HTTP status line
	// ("403 Forbidden"), or the SOCKS reply or protocol error.
	Reply string
	// Err is the underlying error, if any (nil when the parent answered
	// with a refusal).
	Err error
}

// Error returns one line naming the parent and what went wrong, without
// credentials.
func (e *ParentError) Error() string {
	kind, addr, _ := strings.Cut(e.Parent, "://")
	name := e.Parent // "parent proxy socks5://h:p": the kind says what to fix
	if Kind(kind) == HTTP {
		name = addr // "parent proxy h:p", as the operator wrote it in parentProxy
	}
	proto := protocolName(Kind(kind))
	switch e.Op {
	case "dial":
		return fmt.Sprintf("parent proxy %s unreachable: %s", name, describe(e.Err, e.Reply))
	case "auth":
		if Kind(kind) == HTTP {
			return fmt.Sprintf("parent proxy %s rejected the credentials (%d)", name, e.StatusCode)
		}
		return fmt.Sprintf("%s parent %s rejected the username/password", proto, addr)
	case "auth-required":
		if Kind(kind) == HTTP {
			return fmt.Sprintf("parent proxy %s requires credentials (%d)", name, e.StatusCode)
		}
		return fmt.Sprintf("%s parent %s requires a username/password", proto, addr)
	case "connect":
		switch Kind(kind) {
		case HTTP:
			status := e.Reply
			if status == "" {
				status = fmt.Sprint(e.StatusCode)
			}
			return fmt.Sprintf("parent proxy %s refused the CONNECT to %s (%s)", name, e.Target, status)
		case SOCKS4, SOCKS4a:
			why := ""
			if e.ReplyCode != socks4Rejected && e.Reply != "" {
				why = ": " + e.Reply
			}
			return fmt.Sprintf("%s parent %s rejected the request for %s%s (reply %d)", proto, addr, e.Target, why, e.ReplyCode)
		default:
			return fmt.Sprintf("%s parent %s refused %s: %s (reply %d)", proto, addr, e.Target, e.Reply, e.ReplyCode)
		}
	default:
		step := proto + " handshake"
		if Kind(kind) == HTTP {
			step = "CONNECT"
		}
		return fmt.Sprintf("parent proxy %s failed the %s for %s: %s", name, step, e.Target, describe(e.Err, e.Reply))
	}
}

// Unwrap returns Err.
func (e *ParentError) Unwrap() error { return e.Err }

// Timeout reports whether Err is a timeout: a net.Error whose Timeout is
// true, or context.DeadlineExceeded. The proxy answers those with 504.
func (e *ParentError) Timeout() bool { return isTimeout(e.Err) }

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describe says in a few words why err happened: the innermost cause of a
// *net.OpError ("connect: connection refused") rather than its
// "dial tcp a->b:" prefix, which the surrounding message already says.
func describe(err error, reply string) string {
	switch {
	case err == nil && reply != "":
		return reply
	case err == nil:
		return "unknown error"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case isTimeout(err):
		return "timed out"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the parent"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return describe(op.Err, reply)
	}
	return err.Error()
}

func protocolName(k Kind) string {
	switch k {
	case SOCKS4:
		return "SOCKS4"
	case SOCKS4a:
		return "SOCKS4a"
	case SOCKS5:
		return "SOCKS5"
	default:
		return "HTTP"
	}
}
