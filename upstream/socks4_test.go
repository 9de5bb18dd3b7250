package upstream

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stageproxy/stageproxy/internal/testparent"
)

// socks4Request is what the test SOCKS4a parent received.
type socks4Request struct {
	ip, host, user string // host: the SOCKS4a name, "" when an IP was sent
}

// socks4Parent is a SOCKS4/4a parent for the tests: it checks the user id,
// connects and copies.
type socks4Parent struct {
	addr string

	mu   sync.Mutex
	reqs []socks4Request // protects: requests received
}

func startSOCKS4Parent(t *testing.T, userID string) *socks4Parent {
	t.Helper()
	p := &socks4Parent{}
	l := listen(t)
	p.addr = l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c, userID)
		}
	}()
	return p
}

func (p *socks4Parent) serve(c net.Conn, userID string) {
	defer c.Close()
	br := bufio.NewReader(c)
	var h [8]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || h[0] != 4 || h[1] != 1 {
		return
	}
	user, err := br.ReadString(0)
	if err != nil {
		return
	}
	r := socks4Request{ip: net.IP(h[4:8]).String(), user: strings.TrimSuffix(user, "\x00")}
	dst := r.ip
	if h[4] == 0 && h[5] == 0 && h[6] == 0 && h[7] != 0 {
		name, err := br.ReadString(0)
		if err != nil {
			return
		}
		r.host = strings.TrimSuffix(name, "\x00")
		dst = r.host
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, r)
	p.mu.Unlock()
	if r.user != userID {
		c.Write([]byte{0, 91, 0, 0, 0, 0, 0, 0})
		return
	}
	target, err := net.Dial("tcp", net.JoinHostPort(dst, strconv.Itoa(int(h[2])<<8|int(h[3]))))
	if err != nil {
		c.Write([]byte{0, 91, 0, 0, 0, 0, 0, 0})
		return
	}
	c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0})
	testparent.Pipe(c, target)
}

func (p *socks4Parent) seen() []socks4Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]socks4Request(nil), p.reqs...)
}

// TestSOCKS4Addressing checks what goes on the wire: SOCKS4 resolves names
// here and sends IPv4, SOCKS4a sends names for the parent to resolve.
func TestSOCKS4Addressing(t *testing.T) {
	echo := startEcho(t)
	_, port, _ := net.SplitHostPort(echo)
	tests := []struct {
		name    string
		kind    Kind
		target  string
		want    socks4Request
		wantErr string
	}{
		{name: "socks4 IPv4 literal", kind: SOCKS4, target: "127.0.0.1:" + port, want: socks4Request{ip: "127.0.0.1", user: "u"}},
		{name: "socks4 resolves names to IPv4", kind: SOCKS4, target: "localhost:" + port, want: socks4Request{ip: "127.0.0.1", user: "u"}},
		{name: "socks4 cannot carry IPv6", kind: SOCKS4, target: "[::1]:" + port,
			wantErr: "SOCKS4 parent PARENT cannot reach IPv6 address ::1 (use socks4a or socks5)"},
		{name: "socks4a IPv4 literal", kind: SOCKS4a, target: "127.0.0.1:" + port, want: socks4Request{ip: "127.0.0.1", user: "u"}},
		{name: "socks4a sends names", kind: SOCKS4a, target: "localhost:" + port, want: socks4Request{ip: "0.0.0.1", host: "localhost", user: "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := startSOCKS4Parent(t, "u")
			d := newTestDialer(t, Config{SOCKS: &Parent{Kind: tt.kind, Addr: parent.addr, User: "u"}})
			c, err := d.DialTunnel(testContext(t), "tcp", tt.target)
			if tt.wantErr != "" {
				if want := strings.ReplaceAll(tt.wantErr, "PARENT", parent.addr); err == nil || err.Error() != want {
					t.Fatalf("DialTunnel(%q) = %v, want %q", tt.target, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("DialTunnel(%q) = %v", tt.target, err)
			}
			defer c.Close()
			echoOnce(t, c)
			if got := parent.seen(); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("parent received %+v, want [%+v]", got, tt.want)
			}
		})
	}
}

func TestSOCKS4Replies(t *testing.T) {
	tests := []struct {
		reply []byte
		want  string
		op    string
	}{
		{reply: []byte{0, 91, 0, 0, 0, 0, 0, 0}, op: "connect", want: "SOCKS4a parent PARENT rejected the request for example.org:443 (reply 91)"},
		{reply: []byte{0, 93, 0, 0, 0, 0, 0, 0}, op: "connect", want: "SOCKS4a parent PARENT rejected the request for example.org:443: identd reports a different user id (reply 93)"},
		{reply: []byte("HTTP/1.1 400 Bad Request\r\n"), op: "handshake", want: "parent proxy socks4a://PARENT failed the SOCKS4a handshake for example.org:443: unexpected reply version 72 (is it a SOCKS4 server?)"},
		{reply: []byte{0, 90}, op: "handshake", want: "parent proxy socks4a://PARENT failed the SOCKS4a handshake for example.org:443: connection closed by the parent"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			l := listen(t)
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				io.ReadFull(br, make([]byte, 8))
				br.ReadString(0) // user id
				br.ReadString(0) // host name
				c.Write(tt.reply)
			}()
			d := newTestDialer(t, Config{SOCKS: &Parent{Kind: SOCKS4a, Addr: l.Addr().String()}})
			_, err := d.DialTunnel(testContext(t), "tcp", "example.org:443")
			pe := wantParentError(t, err, tt.op)
			if want := strings.ReplaceAll(tt.want, "PARENT", l.Addr().String()); pe.Error() != want {
				t.Fatalf("DialTunnel error = %q, want %q", pe.Error(), want)
			}
		})
	}
}
