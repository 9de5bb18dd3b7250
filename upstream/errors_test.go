package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestParentErrorText(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err  *ParentError
		want string
	}{
		{&ParentError{Parent: "http://10.0.0.2:3128", Op: "auth", Target: "example.org:443", StatusCode: 407, Reply: "407 Proxy Authentication Required"},
			"parent proxy 10.0.0.2:3128 rejected the credentials (407)"},
		{&ParentError{Parent: "http://10.0.0.2:3128", Op: "auth-required", StatusCode: 407},
			"parent proxy 10.0.0.2:3128 requires credentials (407)"},
		{&ParentError{Parent: "http://10.0.0.2:3128", Op: "connect", Target: "example.org:443", StatusCode: 403, Reply: "403 Forbidden"},
			"parent proxy 10.0.0.2:3128 refused the CONNECT to example.org:443 (403 Forbidden)"},
		{&ParentError{Parent: "http://10.0.0.2:3128", Op: "connect", Target: "example.org:443", StatusCode: 502},
			"parent proxy 10.0.0.2:3128 refused the CONNECT to example.org:443 (502)"},
		{&ParentError{Parent: "socks5://10.0.0.3:1080", Op: "dial", Err: refused},
			"parent proxy socks5://10.0.0.3:1080 unreachable: connect: connection refused"},
		{&ParentError{Parent: "http://10.0.0.2:3128", Op: "dial", Err: refused},
			"parent proxy 10.0.0.2:3128 unreachable: connect: connection refused"},
		{&ParentError{Parent: "socks5://10.0.0.3:1080", Op: "connect", Target: "example.org:443", ReplyCode: 2, Reply: "connection not allowed by ruleset"},
			"SOCKS5 parent 10.0.0.3:1080 refused example.org:443: connection not allowed by ruleset (reply 2)"},
		{&ParentError{Parent: "socks5://10.0.0.3:1080", Op: "auth", Target: "example.org:443", Reply: "username/password authentication failed"},
			"SOCKS5 parent 10.0.0.3:1080 rejected the username/password"},
		{&ParentError{Parent: "socks5://10.0.0.3:1080", Op: "auth-required", Target: "example.org:443"},
			"SOCKS5 parent 10.0.0.3:1080 requires a username/password"},
		{&ParentError{Parent: "socks4a://10.0.0.4:1080", Op: "connect", Target: "example.org:443", ReplyCode: 91, Reply: "request rejected or failed"},
			"SOCKS4a parent 10.0.0.4:1080 rejected the request for example.org:443 (reply 91)"},
		{&ParentError{Parent: "socks4://10.0.0.4:1080", Op: "connect", Target: "10.1.1.1:22", ReplyCode: 92, Reply: "the parent cannot reach identd on this host"},
			"SOCKS4 parent 10.0.0.4:1080 rejected the request for 10.1.1.1:22: the parent cannot reach identd on this host (reply 92)"},
		{&ParentError{Parent: "http://10.0.0.2:3128", Op: "handshake", Target: "example.org:443", Err: context.DeadlineExceeded},
			"parent proxy 10.0.0.2:3128 failed the CONNECT for example.org:443: timed out"},
		{&ParentError{Parent: "socks5://10.0.0.3:1080", Op: "handshake", Target: "example.org:443", Err: fmt.Errorf("read: %w", io.ErrUnexpectedEOF)},
			"parent proxy socks5://10.0.0.3:1080 failed the SOCKS5 handshake for example.org:443: connection closed by the parent"},
		{&ParentError{Parent: "socks5://10.0.0.3:1080", Op: "handshake", Target: "example.org:443", Err: context.Canceled},
			"parent proxy socks5://10.0.0.3:1080 failed the SOCKS5 handshake for example.org:443: canceled"},
		{&ParentError{Parent: "socks5://10.0.0.3:1080", Op: "handshake", Target: "example.org:443", Reply: "unexpected protocol version 4"},
			"parent proxy socks5://10.0.0.3:1080 failed the SOCKS5 handshake for example.org:443: unexpected protocol version 4"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("(%+v).Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestParentErrorTimeout(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), true},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, true},
		{os.ErrDeadlineExceeded, true},
		{context.Canceled, false},
		{syscall.ECONNREFUSED, false},
	}
	for _, tt := range tests {
		pe := &ParentError{Parent: "http://h:1", Op: "handshake", Err: tt.err}
		if got := pe.Timeout(); got != tt.want {
			t.Errorf("ParentError{Err: %v}.Timeout() = %v, want %v", tt.err, got, tt.want)
		}
		if tt.err != nil && !errors.Is(pe, tt.err) {
			t.Errorf("errors.Is(ParentError{Err: %v}, Err) = false", tt.err)
		}
	}
	// Wrapped by the Transport, as its proxy dials are.
	var err error = &net.OpError{Op: "proxyconnect", Net: "tcp", Err: &ParentError{Parent: "http://h:1", Op: "handshake", Err: context.DeadlineExceeded}}
	if pe, ok := errors.AsType[*ParentError](err); !ok || !pe.Timeout() || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.AsType[*ParentError](%v) = %v, %v; want a timeout", err, pe, ok)
	}
}
