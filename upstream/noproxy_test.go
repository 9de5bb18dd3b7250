package upstream

import (
	"strings"
	"testing"
)

func TestNoProxyMatch(t *testing.T) {
	tests := []struct {
		entries []string
		host    string
		want    bool
	}{
		{[]string{"example.com"}, "example.com", true},
		{[]string{"example.com"}, "EXAMPLE.com.", true},
		{[]string{"example.com"}, "www.example.com", true},
		{[]string{"example.com"}, "a.b.example.com", true},
		{[]string{"example.com"}, "notexample.com", false},
		{[]string{"example.com"}, "example.com.evil.org", false},
		{[]string{"example.com"}, "com", false},
		{[]string{".example.com"}, "example.com", true},
		{[]string{".example.com"}, "www.example.com", true},
		{[]string{".example.com"}, "wwwexample.com", false},
		{[]string{"*.example.com"}, "www.example.com", true},
		{[]string{"Example.COM."}, "www.example.com", true},
		{[]string{"*"}, "anything.at.all", true},
		{[]string{"*"}, "10.1.2.3", true},
		{[]string{"10.0.0.0/8"}, "10.1.2.3", true},
		{[]string{"10.0.0.0/8"}, "11.1.2.3", false},
		{[]string{"10.0.0.0/8"}, "::ffff:10.1.2.3", true},
		{[]string{"10.1.2.3/8"}, "10.9.9.9", true}, // host bits ignored
		{[]string{"10.0.0.0/8"}, "ten.example", false},
		{[]string{"192.168.1.5"}, "192.168.1.5", true},
		{[]string{"192.168.1.5"}, "192.168.1.6", false},
		{[]string{"fd00::/8"}, "[fd00::1]", true},
		{[]string{"fd00::/8"}, "fd00::1%eth0", true},
		{[]string{"::1"}, "::1", true},
		{[]string{"[::1]"}, "[::1]", true},
		{[]string{"0"}, "0]", false}, // found by FuzzNoProxy: brackets come in pairs
		{[]string{"1.2.3.4"}, "4.example", false},
		{[]string{" example.com ", ""}, "example.com", true},
		{nil, "example.com", false},
		{[]string{"127.0.0.1"}, "localhost", false}, // names are never resolved
		{[]string{"localhost"}, "127.0.0.1", false},
	}
	for _, tt := range tests {
		n, err := parseNoProxy(tt.entries)
		if err != nil {
			t.Fatalf("parseNoProxy(%q) = %v", tt.entries, err)
		}
		if got := n.match(tt.host); got != tt.want {
			t.Errorf("parseNoProxy(%q).match(%q) = %v, want %v", tt.entries, tt.host, got, tt.want)
		}
	}
}

func TestParseNoProxyErrors(t *testing.T) {
	for _, e := range []string{"10.0.0.0/33", "example.com/8", "host:80", "[::1]:80", "a b", "*x", "user@host", ".", "*.", "0..", "a..b", "..a"} {
		_, err := parseNoProxy([]string{"ok.example", e})
		if err == nil || !strings.Contains(err.Error(), `"`+e+`"`) {
			t.Errorf("parseNoProxy([ok.example %q]) = %v, want an error naming the entry", e, err)
		}
	}
}

// FuzzNoProxy checks invariants of the matcher: no panics, case and a
// trailing dot do not matter, an entry matches itself and its subdomains,
// and "*" matches everything.
func FuzzNoProxy(f *testing.F) {
	for _, s := range [][2]string{{"example.com", "www.example.com"}, {"10.0.0.0/8", "10.1.2.3"}, {".a.b", "A.B."}, {"::1", "[::1]"}, {"*", "x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, entry, host string) {
		n, err := parseNoProxy([]string{entry})
		if err != nil {
			return
		}
		got := n.match(host)
		if isASCII(host) && got != n.match(strings.ToUpper(host)) {
			t.Errorf("entry %q: match(%q) = %v, but match(%q) differs", entry, host, got, strings.ToUpper(host))
		}
		if n.all && !got {
			t.Errorf("entry %q matches everything, but not %q", entry, host)
		}
		if len(n.domains) == 1 {
			d := n.domains[0]
			if !n.match(d) || !n.match("sub."+d) || !n.match(d+".") {
				t.Errorf("entry %q (domain %q) does not match itself, a subdomain or its FQDN form", entry, d)
			}
			if got && host != "" && !strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), d) {
				t.Errorf("entry %q matched %q, which does not end in %q", entry, host, d)
			}
		}
		if len(n.prefixes) == 1 && !n.match(n.prefixes[0].Addr().String()) {
			t.Errorf("entry %q does not match its own address %s", entry, n.prefixes[0].Addr())
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
