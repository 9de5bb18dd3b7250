package upstream

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stageproxy/stageproxy/config"
)

func parseConfig(t *testing.T, data string) *config.Config {
	t.Helper()
	c, err := config.Parse("t.conf", []byte(data))
	if err != nil {
		t.Fatalf("config.Parse(%q) = %v", data, err)
	}
	return c
}

func TestFromKeys(t *testing.T) {
	tests := []struct {
		name string
		file string
		want Config
	}{
		{"none", "proxyPort = 8123\n", Config{}},
		{"http", "parentProxy = 10.0.0.2:3128\n",
			Config{HTTP: &Parent{Kind: HTTP, Addr: "10.0.0.2:3128"}}},
		{"http with credentials", "parentProxy = 10.0.0.2:3128\nparentAuthCredentials = \"user:p:w#d\"\n",
			Config{HTTP: &Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "user", Password: "p:w#d"}}},
		{"credentials without parent are ignored, as in Polipo", "parentAuthCredentials = user:pass\n", Config{}},
		{"socks default type is socks5", "socksParentProxy = 10.0.0.3:1080\n",
			Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "10.0.0.3:1080"}}},
		{"socks5 with credentials", "socksParentProxy = [fd00::3]:1080\nsocksProxyType = socks5\nsocksAuthCredentials = builder:pw\n",
			Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "[fd00::3]:1080", User: "builder", Password: "pw"}}},
		{"socks5 ignores socksUserName", "socksParentProxy = h:1080\nsocksUserName = builder\n",
			Config{SOCKS: &Parent{Kind: SOCKS5, Addr: "h:1080"}}},
		{"socks4a user id", "socksParentProxy = h:1080\nsocksProxyType = socks4a\nsocksUserName = builder\n",
			Config{SOCKS: &Parent{Kind: SOCKS4a, Addr: "h:1080", User: "builder"}}},
		{"http through socks", "parentProxy = p:3128\nsocksParentProxy = s:1080\nsocksProxyType = socks4a\n",
			Config{HTTP: &Parent{Kind: HTTP, Addr: "p:3128"}, SOCKS: &Parent{Kind: SOCKS4a, Addr: "s:1080"}}},
		{"no proxy", "parentProxy = p:3128\nnoProxy = \".local, 10.0.0.0/8 localhost\t*.corp,[::1] 127.0.0.1\"\n",
			Config{HTTP: &Parent{Kind: HTTP, Addr: "p:3128"}, NoProxy: []string{".local", "10.0.0.0/8", "localhost", "*.corp", "[::1]", "127.0.0.1"}}},
		{"no proxy everything", "noProxy = *\n", Config{NoProxy: []string{"*"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromKeys(parseConfig(t, tt.file))
			if err != nil {
				t.Fatalf("FromKeys(%q) = %v", tt.file, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromKeys(%q) = %s, want %s", tt.file, dump(got), dump(tt.want))
			}
		})
	}
}

func dump(c Config) string {
	var b strings.Builder
	for _, p := range []*Parent{c.HTTP, c.SOCKS} {
		if p != nil {
			b.WriteString(p.String() + " ")
		}
	}
	return b.String() + strings.Join(c.NoProxy, ",")
}

func TestFromKeysErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"parentProxy = x\n",
			`t.conf:1: parentProxy: missing port in "x" (want HOST:PORT)`},
		{"parentProxy = http://x:1\n",
			`t.conf:1: parentProxy: unexpected scheme in "http://x:1" (want HOST:PORT)`},
		{"parentProxy = x:99999\n",
			`t.conf:1: parentProxy: invalid port "99999" in "x:99999" (want 1-65535)`},
		{"parentProxy = x:1\nparentAuthCredentials = secret\n",
			`t.conf:2: parentAuthCredentials: no ":" between user and password (want "user:pass"; the value is not shown)`},
		{"parentProxy = x:1\nparentAuthCredentials = :secret\n",
			`t.conf:2: parentAuthCredentials: password without a user for http://:xxxxx@x:1 (want a user with the password)`},
		{"socksParentProxy = fd00::1:1080\n",
			`t.conf:1: socksParentProxy: IPv6 host in "fd00::1:1080" needs brackets (want HOST:PORT, e.g. [fd00::1]:3128)`},
		{"socksParentProxy = s:1080\nsocksProxyType = socks6\n",
			`t.conf:2: socksProxyType: unsupported value "socks6" (want socks4, socks4a or socks5)`},
		{"socksProxyType = socks6\n", // no SOCKS parent yet
			`t.conf:1: socksProxyType: unsupported value "socks6" (want socks4, socks4a or socks5)`},
		{"socksParentProxy = s:1080\nsocksAuthCredentials = secret\n",
			`t.conf:2: socksAuthCredentials: no ":" between user and password (want "user:pass" for socks5; the value is not shown)`},
		{"socksParentProxy = s:1080\nsocksProxyType = socks4\nsocksAuthCredentials = bob:secret\n",
			`t.conf:3: socksAuthCredentials: a socks4 parent takes a user id, not a password (want socksUserName = USERID, or socksProxyType = socks5; the value is not shown)`},
		{"socksParentProxy = s:1080\nsocksProxyType = socks4a\nsocksAuthCredentials = secret\n",
			`t.conf:3: socksAuthCredentials: a socks4a parent takes a user id, not a password (want socksUserName = USERID, or socksProxyType = socks5; the value is not shown)`},
		{"socksParentProxy = s:1080\nsocksProxyType = SOCKS4A\nsocksUserName = builder\nsocksAuthCredentials = builder:secret\n",
			`t.conf:4: socksAuthCredentials: a socks4a parent takes a user id, not a password (want socksUserName = USERID, or socksProxyType = socks5; the value is not shown)`},
		// Operators write parentProxy as they write http_proxy: the
		// value is named, its password never.
		{"parentProxy = bob:secret@127.0.0.1:3128\n",
			`t.conf:1: parentProxy: credentials in "bob:xxxxx@127.0.0.1:3128" (want HOST:PORT, with the credentials in parentAuthCredentials)`},
		{"parentProxy = http://bob:secret@127.0.0.1:3128\n",
			`t.conf:1: parentProxy: unexpected scheme in "http://bob:xxxxx@127.0.0.1:3128" (want HOST:PORT, with the credentials in parentAuthCredentials)`},
		{"parentProxy = \"http://bob:se cret@127.0.0.1:3128\"\n",
			`t.conf:1: parentProxy: unexpected scheme in "http://bob:xxxxx@127.0.0.1:3128" (want HOST:PORT, with the credentials in parentAuthCredentials)`},
		{"parentProxy = \"127.0.0.1:3128 bob:secret\"\n",
			`t.conf:1: parentProxy: unexpected text after "127.0.0.1:3128" (want HOST:PORT alone, with any credentials in parentAuthCredentials; the rest is not shown)`},
		{"parentProxy = \"http://bob:secret@127.0.0.1:3128 x\"\n",
			`t.conf:1: parentProxy: unexpected text after "http://bob:xxxxx@127.0.0.1:3128" (want HOST:PORT alone, with any credentials in parentAuthCredentials; the rest is not shown)`},
		{"parentProxy = bob:secret\n",
			`t.conf:1: parentProxy: invalid port in "bob:xxxxx" (want HOST:PORT, the port from 1 to 65535; one that is not a number is not shown, it may be a password)`},
		{"parentProxy = fd00::1:3128\n",
			`t.conf:1: parentProxy: IPv6 host in "fd00::1:3128" needs brackets (want HOST:PORT, e.g. [fd00::1]:3128)`},
		{"parentProxy = bob:secret@[fd00::1]:99999\n",
			`t.conf:1: parentProxy: credentials in "bob:xxxxx@[fd00::1]:99999" (want HOST:PORT, with the credentials in parentAuthCredentials)`},
		{"socksParentProxy = socks5://u:secret@127.0.0.1:1080\n",
			`t.conf:1: socksParentProxy: unexpected scheme in "socks5://u:xxxxx@127.0.0.1:1080" (want HOST:PORT, with the credentials in socksAuthCredentials)`},
		{"socksParentProxy = socks4a://builder@127.0.0.1:1080\n",
			`t.conf:1: socksParentProxy: unexpected scheme in "socks4a://builder@127.0.0.1:1080" (want HOST:PORT, with the credentials in socksAuthCredentials)`},
		{"noProxy = \"u:secret@h\"\n",
			`t.conf:1: noProxy: invalid entry "u:xxxxx@h" (want host names, .domain suffixes, IPs or CIDRs separated by commas, e.g. ".local, 10.0.0.0/8")`},
		{"noProxy = 10.0.0.0/33\n",
			`t.conf:1: noProxy: invalid entry "10.0.0.0/33": not a CIDR such as 10.0.0.0/8`},
		{"noProxy = host:80\n",
			`t.conf:1: noProxy: invalid entry "host:80" (want host names, .domain suffixes, IPs or CIDRs separated by commas, e.g. ".local, 10.0.0.0/8")`},
		{"noProxy = \"a@b\"\n",
			`t.conf:1: noProxy: invalid entry "a@b" (want host names, .domain suffixes, IPs or CIDRs separated by commas, e.g. ".local, 10.0.0.0/8")`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := FromKeys(parseConfig(t, tt.file))
			var pe *config.ParseError
			if err == nil || err.Error() != tt.want || !errors.As(err, &pe) {
				t.Errorf("FromKeys(%q) = %v (%T), want *config.ParseError %q", tt.file, err, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "cret") {
				t.Errorf("FromKeys(%q) error %q shows the password", tt.file, err)
			}
		})
	}
}

func TestSetKeys(t *testing.T) {
	str := func(s string) *string { return &s }
	allSocks := []string{"socksParentProxy", "socksProxyType", "socksUserName", "socksAuthCredentials"}
	tests := []struct {
		name    string
		p       Parent
		noProxy *string
		set     map[string]string
		del     []string
	}{
		{"http", Parent{Kind: HTTP, Addr: "h:3128"}, nil,
			map[string]string{"parentProxy": "h:3128"},
			append([]string{"parentAuthCredentials"}, allSocks...)},
		{"http with credentials and no proxy", Parent{Kind: HTTP, Addr: "h:3128", User: "u", Password: "p"}, str(".local"),
			map[string]string{"parentProxy": "h:3128", "parentAuthCredentials": "u:p", "noProxy": ".local"},
			allSocks},
		{"socks5 with credentials, empty no proxy deletes it", Parent{Kind: SOCKS5, Addr: "s:1080", User: "u", Password: "p"}, str(""),
			map[string]string{"socksParentProxy": "s:1080", "socksProxyType": "socks5", "socksAuthCredentials": "u:p"},
			[]string{"socksUserName", "parentProxy", "parentAuthCredentials", "noProxy"}},
		{"socks4a user id", Parent{Kind: SOCKS4a, Addr: "s:1080", User: "builder"}, nil,
			map[string]string{"socksParentProxy": "s:1080", "socksProxyType": "socks4a", "socksUserName": "builder"},
			[]string{"socksAuthCredentials", "parentProxy", "parentAuthCredentials"}},
		{"socks4 anonymous", Parent{Kind: SOCKS4, Addr: "s:1080"}, nil,
			map[string]string{"socksParentProxy": "s:1080", "socksProxyType": "socks4"},
			[]string{"socksUserName", "socksAuthCredentials", "parentProxy", "parentAuthCredentials"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, del := SetKeys(tt.p, tt.noProxy)
			slices.Sort(del)
			slices.Sort(tt.del)
			if !reflect.DeepEqual(set, tt.set) || !reflect.DeepEqual(del, tt.del) {
				t.Errorf("SetKeys(%v) = %v, %v, want %v, %v", tt.p, set, del, tt.set, tt.del)
			}
		})
	}
}

// TestSetKeysReplacesTheParent edits a hand-written file: the SOCKS parent
// goes, the comments and other keys stay, and FromKeys reads the new parent.
func TestSetKeysReplacesTheParent(t *testing.T) {
	file := "# node proxy\nproxyPort = 8123\nsocksParentProxy = s:1080 # old gateway\nsocksProxyType = socks5\nsocksAuthCredentials = old:secret\nnoProxy = .local\n"
	p := Parent{Kind: HTTP, Addr: "10.0.0.2:3128", User: "u", Password: "new"}
	set, del := SetKeys(p, nil)
	out := string(config.Edit([]byte(file), set, del))
	want := "# node proxy\nproxyPort = 8123\nnoProxy = .local\nparentAuthCredentials = u:new\nparentProxy = 10.0.0.2:3128\n"
	if out != want {
		t.Errorf("Edit(SetKeys) =\n%s\nwant\n%s", out, want)
	}
	got, err := FromKeys(parseConfig(t, out))
	if err != nil || got.SOCKS != nil || got.HTTP == nil || *got.HTTP != p || !slices.Equal(got.NoProxy, []string{".local"}) {
		t.Errorf("FromKeys(edited) = %s, %v, want %s .local", dump(got), err, p)
	}
}

func TestDeleteKeys(t *testing.T) {
	file := "parentProxy = p:3128\nparentAuthCredentials = u:secret\nsocksParentProxy = s:1\nsocksProxyType = socks4a\nsocksUserName = b\nsocksAuthCredentials = x\nnoProxy = .local\n# kept\n"
	out := string(config.Edit([]byte(file), nil, DeleteKeys()))
	if out != "# kept\n" {
		t.Errorf("Edit(DeleteKeys) = %q, want %q", out, "# kept\n")
	}
}

func TestHasCredential(t *testing.T) {
	for file, want := range map[string]bool{
		"parentProxy = p:1\n":                                 false,
		"parentAuthCredentials = u:p\n":                       true,
		"socksAuthCredentials = u:p\n":                        true,
		"socksUserName = builder\nsocksProxyType = socks4a\n": false,
	} {
		if got := HasCredential(parseConfig(t, file)); got != want {
			t.Errorf("HasCredential(%q) = %v, want %v", file, got, want)
		}
	}
}

// TestFromKeysErrorsHideThePassword puts passwords into the parent keys in
// the ways operators mistype them, and fails if an error quotes any piece
// of one.
func TestFromKeysErrorsHideThePassword(t *testing.T) {
	passwords := []string{"s3cr3t", "s3@cr3t", "s3 cr3t", "s3://cr3t", "s3:cr3t", "s3#cr3t"}
	values := []string{
		"bob:PW@127.0.0.1:3128",
		"http://bob:PW@127.0.0.1:3128",
		"http://bob:PW@127.0.0.1:3128/",
		"http://bob:PW@127.0.0.1",
		"socks5://bob:PW@[fd00::1]:1080",
		"bob:PW@fd00::1:1080",
		"bob:PW@127.0.0.1:99999",
		"bob:PW@",
		"127.0.0.1:3128 bob:PW",
		"bob:PW",
		":PW@127.0.0.1:3128",
	}
	keys := []string{
		"parentProxy = %s\n",
		"socksParentProxy = %s\n",
		"parentProxy = h:1\nparentAuthCredentials = %s\n",
		"socksParentProxy = h:1\nsocksAuthCredentials = %s\n",
		"socksParentProxy = h:1\nsocksProxyType = socks4\nsocksAuthCredentials = %s\n",
		"socksParentProxy = h:1\nsocksProxyType = socks4a\nsocksAuthCredentials = %s\n",
		"noProxy = %s\n",
	}
	for _, key := range keys {
		for _, value := range values {
			for _, pw := range passwords {
				if strings.Contains(pw, "@") && !strings.Contains(value, "PW@") {
					continue // "bob:s3@cr3t" is a password at host cr3t
				}
				v := strings.ReplaceAll(value, "PW", pw)
				file := fmt.Sprintf(key, strconv.Quote(v))
				c, err := config.Parse("t.conf", []byte(file))
				if err != nil {
					t.Fatalf("config.Parse(%q) = %v", file, err)
				}
				_, err = FromKeys(c)
				if err != nil && (strings.Contains(err.Error(), "s3") || strings.Contains(err.Error(), "cr3t")) {
					t.Errorf("FromKeys(%q) = %q, which shows the password %q", file, err, pw)
				}
			}
		}
	}
}
