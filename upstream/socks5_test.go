package upstream

import (
	"context"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"

	socks5 "github.com/armon/go-socks5"
)

// socks5Parent is a SOCKS5 parent (armon/go-socks5) demanding user "u",
// password "p", and recording the addresses it dialed.
type socks5Parent struct {
	addr string

	mu     sync.Mutex
	dialed []string // protects: addresses the parent connected to
}

func startSOCKS5Parent(t *testing.T, rules socks5.RuleSet) *socks5Parent {
	t.Helper()
	p := &socks5Parent{}
	srv, err := socks5.New(&socks5.Config{
		Credentials: socks5.StaticCredentials{"u": "p"},
		Logger:      log.New(io.Discard, "", 0),
		Rules:       rules,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			p.mu.Lock()
			p.dialed = append(p.dialed, addr)
			p.mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	go srv.Serve(l)
	p.addr = l.Addr().String()
	return p
}

func (p *socks5Parent) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dialed...)
}

// denyAll is a ruleset refusing every request (reply 2) and recording the
// host names asked for.
type denyAll struct {
	mu    sync.Mutex
	fqdns []string // protects: DST.ADDR of requests sent as names
}

func (r *denyAll) Allow(ctx context.Context, req *socks5.Request) (context.Context, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fqdns = append(r.fqdns, req.DestAddr.FQDN)
	return ctx, false
}

func TestSOCKS5Refusals(t *testing.T) {
	echo := startEcho(t)
	dead := deadAddr(t)
	tests := []struct {
		name   string
		rules  socks5.RuleSet
		target string
		want   string // PARENT stands for the parent's address
		wantOp string
		code   int
	}{
		{name: "ruleset", rules: &denyAll{}, target: echo,
			want: "SOCKS5 parent PARENT refused " + echo + ": connection not allowed by ruleset (reply 2)", wantOp: "connect", code: 2},
		{name: "target refused", target: dead,
			want: "SOCKS5 parent PARENT refused " + dead + ": connection refused (reply 5)", wantOp: "connect", code: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := startSOCKS5Parent(t, tt.rules)
			d := newTestDialer(t, Config{SOCKS: &Parent{Kind: SOCKS5, Addr: parent.addr, User: "u", Password: "p"}})
			_, err := d.DialTunnel(testContext(t), "tcp", tt.target)
			pe := wantParentError(t, err, tt.wantOp)
			if want := strings.ReplaceAll(tt.want, "PARENT", parent.addr); pe.Error() != want {
				t.Fatalf("DialTunnel error = %q, want %q", pe.Error(), want)
			}
			if pe.ReplyCode != tt.code || pe.Parent != "socks5://"+parent.addr || pe.Target != tt.target {
				t.Fatalf("ParentError = %+v, want ReplyCode %d, Parent socks5://%s, Target %s", pe, tt.code, parent.addr, tt.target)
			}
		})
	}
}

// TestSOCKS5SendsHostNames checks the socks5h behaviour: the parent, not
// us, resolves a host name.
func TestSOCKS5SendsHostNames(t *testing.T) {
	rules := &denyAll{}
	parent := startSOCKS5Parent(t, rules)
	d := newTestDialer(t, Config{SOCKS: &Parent{Kind: SOCKS5, Addr: parent.addr, User: "u", Password: "p"}})
	_, err := d.DialTunnel(testContext(t), "tcp", "localhost:443")
	wantParentError(t, err, "connect")
	rules.mu.Lock()
	defer rules.mu.Unlock()
	if len(rules.fqdns) != 1 || rules.fqdns[0] != "localhost" {
		t.Fatalf("parent was asked for names %q, want [localhost]", rules.fqdns)
	}
}
