package upstream

import (
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in   string
		want Parent
		str  string // want.String()
	}{
		{"192.168.0.99:3128", Parent{Kind: HTTP, Addr: "192.168.0.99:3128"}, "http://192.168.0.99:3128"},
		{"proxy.company.com:8080", Parent{Kind: HTTP, Addr: "proxy.company.com:8080"}, "http://proxy.company.com:8080"},
		{"[fd00::1]:3128", Parent{Kind: HTTP, Addr: "[fd00::1]:3128"}, "http://[fd00::1]:3128"},
		{"http://10.0.0.2:3128", Parent{Kind: HTTP, Addr: "10.0.0.2:3128"}, "http://10.0.0.2:3128"},
		{"http://10.0.0.2:3128/", Parent{Kind: HTTP, Addr: "10.0.0.2:3128"}, "http://10.0.0.2:3128"},
		{"HTTP://Proxy:03128", Parent{Kind: HTTP, Addr: "Proxy:3128"}, "http://Proxy:3128"},
		{"http://user:secret@10.0.0.2:3128", Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "user", Password: "secret"},
			"http://user:xxxxx@10.0.0.2:3128"},
		{"http://user@10.0.0.2:3128", Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "user"}, "http://user@10.0.0.2:3128"},
		// The last "@" ends the userinfo: a password may hold "@", "/", "#"
		// and ":" as typed, or percent-encoded.
		{"http://user:p@ss/w#rd:x@proxy:3128", Parent{Kind: HTTP, Addr: "proxy:3128", User: "user", Password: "p@ss/w#rd:x"},
			"http://user:xxxxx@proxy:3128"},
		{"http://us%40er:p%20w@proxy:3128", Parent{Kind: HTTP, Addr: "proxy:3128", User: "us@er", Password: "p w"},
			"http://us%40er:xxxxx@proxy:3128"},
		{"socks5://10.0.0.3:1080", Parent{Kind: SOCKS5, Addr: "10.0.0.3:1080"}, "socks5://10.0.0.3:1080"},
		{"socks5h://u:p@[fd00::3]:1080", Parent{Kind: SOCKS5, Addr: "[fd00::3]:1080", User: "u", Password: "p"},
			"socks5://u:xxxxx@[fd00::3]:1080"},
		{"socks4a://builder@10.0.0.4:1080", Parent{Kind: SOCKS4a, Addr: "10.0.0.4:1080", User: "builder"},
			"socks4a://builder@10.0.0.4:1080"},
		{"socks4a://10.0.0.4:1080", Parent{Kind: SOCKS4a, Addr: "10.0.0.4:1080"}, "socks4a://10.0.0.4:1080"},
		{"socks4://builder@gw.internal:1080", Parent{Kind: SOCKS4, Addr: "gw.internal:1080", User: "builder"},
			"socks4://builder@gw.internal:1080"},
		{"build_gw:65535", Parent{Kind: HTTP, Addr: "build_gw:65535"}, "http://build_gw:65535"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddr(tt.in)
			if err != nil {
				t.Fatalf("ParseAddr(%q) = %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseAddr(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("ParseAddr(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
		})
	}
}

func TestParseAddrErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `empty ADDR (want HOST:PORT, or http://, socks4://, socks4a:// or socks5:// then HOST:PORT)`},
		{"ftp://proxy:21", `unsupported scheme "ftp" (want http, socks4, socks4a or socks5)`},
		{"https://proxy:443", `unsupported scheme "https" (want http, socks4, socks4a or socks5)`},
		{"proxy.example", `missing port in "proxy.example" (want HOST:PORT)`},
		{"proxy.example:", `missing port in "proxy.example:" (want HOST:PORT)`},
		{"socks5://proxy", `missing port in "socks5://proxy" (want socks5://HOST:PORT)`},
		{"10.0.0.2:99999", `invalid port "99999" in "10.0.0.2:99999" (want 1-65535)`},
		{"10.0.0.2:0", `invalid port "0" in "10.0.0.2:0" (want 1-65535)`},
		{"10.0.0.2:-1", `invalid port "-1" in "10.0.0.2:-1" (want 1-65535)`},
		{"10.0.0.2:http", `invalid port "http" in "10.0.0.2:http" (want 1-65535)`},
		{"http://user:secret@h:12a", `invalid port "12a" in "http://user:xxxxx@h:12a" (want 1-65535)`},
		{":3128", `missing host in ":3128" (want HOST:PORT)`},
		{"http://:3128", `missing host in "http://:3128" (want http://HOST:PORT)`},
		{"fd00::1:3128", `IPv6 host in "fd00::1:3128" needs brackets (want HOST:PORT, e.g. [fd00::1]:3128)`},
		{"[10.0.0.1]:80", `invalid host "10.0.0.1" in "[10.0.0.1]:80" (want an IPv6 address inside the brackets)`},
		{"a b:80", `invalid host "a b" in "a b:80" (want a host name or an IP address; IPv6 in brackets)`},
		{"http://proxy:3128/path", `unexpected "/path" after the port in "http://proxy:3128/path" (want http://HOST:PORT; no path, query or fragment)`},
		{"http://proxy:3128?x=1", `unexpected "?x=1" after the port in "http://proxy:3128?x=1" (want http://HOST:PORT; no path, query or fragment)`},
		{"http://proxy:3128#f", `unexpected "#f" after the port in "http://proxy:3128#f" (want http://HOST:PORT; no path, query or fragment)`},
		{"socks4a://builder:secret@h:1080", `socks4a parent takes a user id, not a password (want socks4a://USERID@HOST:PORT)`},
		{"socks4://builder:@h:1080", `socks4 parent takes a user id, not a password (want socks4://USERID@HOST:PORT)`},
		{"http://:secret@h:3128", `password without a user in "http://:xxxxx@h:3128" (want http://USER:PASS@HOST:PORT)`},
		{"user:secret@h:3128", `credentials in "user:xxxxx@h:3128" need a scheme (want http://USER:PASS@HOST:PORT, or HOST:PORT with -u and --password-stdin)`},
		{"http://a%zz:secret@h:1", `invalid percent-encoding in the user of "http://a%zz:xxxxx@h:1" (want %XX with two hex digits)`},
		{"http://u:sec%zzret@h:1", `invalid percent-encoding in the password of "http://u:xxxxx@h:1" (want %XX with two hex digits)`},
		{"http://u:sec%0Aret@h:1", `the password contains a control character such as a newline (want printable characters only)`},
		{"http://a%3Ab:secret@h:1", `user "a:xxxxx" contains ":" (want a user without a colon; the password may have one)`},
		{"socks5://u:" + strings.Repeat("x", 256) + "@h:1", `socks5 user or password longer than 255 bytes (want at most 255, RFC 1929)`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddr(tt.in)
			if err == nil {
				t.Fatalf("ParseAddr(%q) = %#v, want error %q", tt.in, got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseAddr(%q) error =\n  %s\nwant\n  %s", tt.in, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseAddr(%q) error %q shows the password", tt.in, err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Parent
		want string // "" for valid
	}{
		{"http with credentials", Parent{Kind: HTTP, Addr: "h:1", User: "u", Password: "p:w"}, ""},
		{"socks4a user id with colon", Parent{Kind: SOCKS4a, Addr: "h:1", User: "a:b"}, ""},
		{"no kind", Parent{Addr: "h:1"}, `unsupported kind "" (want http, socks4, socks4a or socks5)`},
		{"bad addr", Parent{Kind: HTTP, Addr: "h"}, `missing port in "h" (want HOST:PORT)`},
		{"password without user", Parent{Kind: SOCKS5, Addr: "h:1", Password: "secret"},
			`password without a user for socks5://:xxxxx@h:1 (want a user with the password)`},
		{"newline in user", Parent{Kind: HTTP, Addr: "h:1", User: "u\n"},
			`the user contains a control character such as a newline (want printable characters only)`},
		{"newline in password", Parent{Kind: HTTP, Addr: "h:1", User: "u", Password: "secret\r\n"},
			`the password contains a control character such as a newline (want printable characters only)`},
		{"socks4 password", Parent{Kind: SOCKS4, Addr: "h:1", User: "u", Password: "secret"},
			`socks4 parent takes a user id, not a password (want socks4://USERID@HOST:PORT)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("%#v.Validate() = %q, want %q", tt.p, got, tt.want)
			}
		})
	}
}

func TestParentStringNeverShowsPassword(t *testing.T) {
	p := Parent{Kind: SOCKS5, Addr: "10.0.0.3:1080", User: "builder", Password: "s3cr3t"}
	if got, want := p.String(), "socks5://builder:xxxxx@10.0.0.3:1080"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Parent{}).String(); got != "" {
		t.Errorf("Parent{}.String() = %q, want \"\"", got)
	}
}
