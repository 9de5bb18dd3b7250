package upstream

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stageproxy/stageproxy/internal/testparent"
)

// scriptedParent answers every connection with reply, once it has read a
// request head, and then echoes.
func scriptedParent(t *testing.T, reply string) string {
	t.Helper()
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, reply)
				io.Copy(c, br)
			}()
		}
	}()
	return l.Addr().String()
}

func TestConnectReplies(t *testing.T) {
	tests := []struct {
		name    string
		reply   string
		wantErr string // "": the tunnel works and starts with wantData
		wantOp  string
		data    string
	}{
		{name: "200 with early bytes", reply: "HTTP/1.1 200 Connection established\r\n\r\nearly", data: "early"},
		{name: "204 accepted", reply: "HTTP/1.0 204 No Content\r\n\r\n", data: ""},
		{name: "403", reply: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
			wantErr: "parent proxy PARENT refused the CONNECT to example.org:443 (403 Forbidden)", wantOp: "connect"},
		{name: "407 without credentials configured", reply: "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
			wantErr: "parent proxy PARENT requires credentials (407)", wantOp: "auth-required"},
		{name: "reply head too large", reply: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxConnectReplyHead) + "\r\n\r\n",
			wantErr: "parent proxy PARENT failed the CONNECT for example.org:443: reply head larger than 32768 bytes", wantOp: "handshake"},
		{name: "not HTTP", reply: "SSH-2.0-OpenSSH\r\n\r\n",
			wantErr: `parent proxy PARENT failed the CONNECT for example.org:443: malformed HTTP response "SSH-2.0-OpenSSH"`, wantOp: "handshake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := scriptedParent(t, tt.reply)
			d := newTestDialer(t, Config{HTTP: &Parent{Kind: HTTP, Addr: addr}})
			c, err := d.DialTunnel(testContext(t), "tcp", "example.org:443")
			if tt.wantErr != "" {
				pe := wantParentError(t, err, tt.wantOp)
				if want := strings.ReplaceAll(tt.wantErr, "PARENT", addr); pe.Error() != want {
					t.Fatalf("DialTunnel error = %q, want %q", pe.Error(), want)
				}
				return
			}
			if err != nil {
				t.Fatalf("DialTunnel: %v", err)
			}
			defer c.Close()
			io.WriteString(c, "+echo")
			want := tt.data + "+echo"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Fatalf("tunnel read %q, %v; want %q", got, err, want)
			}
		})
	}
}

// TestConnectCredentialsPerDial checks that the CONNECT carries Basic
// credentials built for that dial, and that two dialers with different
// credentials do not share them (golang/go#36431).
func TestConnectCredentialsPerDial(t *testing.T) {
	parent := testparent.NewHTTP(t, "u", "p")
	echo := startEcho(t)
	good := newTestDialer(t, Config{HTTP: &Parent{Kind: HTTP, Addr: parent.Addr, User: "u", Password: "p"}})
	bad := newTestDialer(t, Config{HTTP: &Parent{Kind: HTTP, Addr: parent.Addr, User: "u", Password: "wrong"}})
	ctx := testContext(t)
	c, err := good.DialTunnel(ctx, "tcp", echo)
	if err != nil {
		t.Fatalf("DialTunnel(good) = %v", err)
	}
	c.Close()
	if _, err := bad.DialTunnel(ctx, "tcp", echo); err == nil {
		t.Fatal("DialTunnel(bad) succeeded")
	}
	c, err = good.DialTunnel(ctx, "tcp", echo)
	if err != nil {
		t.Fatalf("DialTunnel(good) after bad = %v", err)
	}
	c.Close()
	auth, _ := parent.Seen()
	want := []string{basic("u", "p"), basic("u", "wrong"), basic("u", "p")}
	if strings.Join(auth, ",") != strings.Join(want, ",") {
		t.Fatalf("parent saw Proxy-Authorization %q, want %q", auth, want)
	}
}

func basic(u, p string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
}

func TestPrefixConnCloseWrite(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pc := &prefixConn{Conn: a, buf: []byte("x")}
	if err := pc.CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite on a pipe = %v, want ErrUnsupported", err)
	}
}
