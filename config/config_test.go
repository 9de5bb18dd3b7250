package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// stackato is the Polipo config of a Stackato cluster's proxy node
// (hpcloud/stackato-cluster-tool, FIELD-NOTES 7.3).
const stackato = `proxyAddress = "::0"
proxyPort = 8123
diskCacheRoot = ""
chunkHighMark = 104857600
objectHighMark = 16384
allowedPorts = 1-65535
disableVia = false
maxAge = 0
maxAgeFraction = 0
maxExpiresAge = 0
maxNoModifiedAge = 0
relaxTransparency = maybe
dnsUseGethostbyname = happily
logFile = /var/log/polipo/polipo.log
`

func TestParseStackato(t *testing.T) {
	c, err := Parse("polipo/config", []byte(stackato))
	if err != nil {
		t.Fatalf("Parse(stackato) = %v, want nil", err)
	}
	if c.ProxyAddress != "::0" || c.ProxyPort != 8123 {
		t.Errorf("ProxyAddress, ProxyPort = %q, %d, want ::0, 8123", c.ProxyAddress, c.ProxyPort)
	}
	if c.Addr() != "[::0]:8123" {
		t.Errorf("Addr() = %q, want [::0]:8123", c.Addr())
	}
	if c.CacheSize != 104857600 {
		t.Errorf("CacheSize = %d, want 104857600", c.CacheSize)
	}
	if c.RelaxTransparency != "maybe" {
		t.Errorf("RelaxTransparency = %q, want maybe", c.RelaxTransparency)
	}
	if c.LogFile != "/var/log/polipo/polipo.log" {
		t.Errorf("LogFile = %q", c.LogFile)
	}
	wantWarn := []string{"diskCacheRoot", "objectHighMark", "allowedPorts", "disableVia", "maxAge",
		"maxAgeFraction", "maxExpiresAge", "maxNoModifiedAge", "dnsUseGethostbyname"}
	if len(c.Warnings) != len(wantWarn) {
		t.Fatalf("Warnings = %q, want %d", c.Warnings, len(wantWarn))
	}
	if want := "polipo/config:3: polipo variable diskCacheRoot is not implemented by stageproxy; ignored"; c.Warnings[0] != want {
		t.Errorf("Warnings[0] = %q, want %q", c.Warnings[0], want)
	}
	for i, name := range wantWarn {
		if !strings.Contains(c.Warnings[i], " "+name+" ") {
			t.Errorf("Warnings[%d] = %q, want it to name %s", i, c.Warnings[i], name)
		}
	}
}

func TestDefault(t *testing.T) {
	c, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Parse(empty) = %+v, want Default() %+v", c, Default())
	}
	if c.Addr() != "127.0.0.1:8123" {
		t.Errorf("Addr() = %q, want 127.0.0.1:8123", c.Addr())
	}
	if c.CacheSize != 100_000_000 || c.MaxObjectSize != 32<<20 || c.EffectiveMaxObjectSize() != 32<<20 {
		t.Errorf("CacheSize, MaxObjectSize = %d, %d", c.CacheSize, c.MaxObjectSize)
	}
	if got := len(c.TunnelAllowedPorts); got != 11 {
		t.Errorf("len(TunnelAllowedPorts) = %d, want 11", got)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(*Config) bool
	}{
		{"comments and blanks", "# comment\n\n   \n\t# indented\nproxyPort = 3128\n",
			func(c *Config) bool { return c.ProxyPort == 3128 }},
		{"trailing comment", "proxyPort = 3128 # squid's\n",
			func(c *Config) bool { return c.ProxyPort == 3128 }},
		{"hash in quotes", `logFile = "/tmp/a#b.log" # comment`,
			func(c *Config) bool { return c.LogFile == "/tmp/a#b.log" }},
		{"quoted blanks kept", `parentAuthCredentials = " user:p w "`,
			func(c *Config) bool { return c.ParentAuthCredentials == " user:p w " }},
		{"escaped quote", `parentAuthCredentials = "u:p\"w\\"`,
			func(c *Config) bool { return c.ParentAuthCredentials == `u:p"w\` }},
		{"no spaces", "proxyPort=1",
			func(c *Config) bool { return c.ProxyPort == 1 }},
		{"crlf", "proxyPort = 2\r\nlogFile = x\r\n",
			func(c *Config) bool { return c.ProxyPort == 2 && c.LogFile == "x" }},
		{"duplicate last wins", "proxyPort = 1\nproxyPort = 2\n",
			func(c *Config) bool { return c.ProxyPort == 2 }},
		{"cacheSize with unit", "cacheSize = 64MiB",
			func(c *Config) bool { return c.CacheSize == 64<<20 }},
		{"small cache caps objects", "cacheSize = 10MB",
			func(c *Config) bool { return c.EffectiveMaxObjectSize() == 5_000_000 }},
		{"maxObjectSize", "maxObjectSize = 1GB\ncacheSize = 4GB",
			func(c *Config) bool { return c.EffectiveMaxObjectSize() == 1e9 }},
		{"allowedClients", "allowedClients = 127.0.0.1, 10.1.2.3/8 ::1",
			func(c *Config) bool {
				return reflect.DeepEqual(c.AllowedClients, []netip.Prefix{
					netip.MustParsePrefix("127.0.0.1/32"),
					netip.MustParsePrefix("10.0.0.0/8"),
					netip.MustParsePrefix("::1/128"),
				})
			}},
		{"quoted list", `allowedClients = "127.0.0.1", "192.168.0.0/16"`,
			func(c *Config) bool { return len(c.AllowedClients) == 2 }},
		{"tunnelAllowedPorts", "tunnelAllowedPorts = 443, 5222 - 5223",
			func(c *Config) bool {
				return reflect.DeepEqual(c.TunnelAllowedPorts, []PortRange{{443, 443}, {5222, 5223}})
			}},
		{"relaxTransparency false", "relaxTransparency = false",
			func(c *Config) bool { return c.RelaxTransparency == "false" && len(c.Warnings) == 0 }},
		{"relaxTransparency true warns", "relaxTransparency = true",
			func(c *Config) bool {
				return c.RelaxTransparency == "maybe" && len(c.Warnings) == 1 &&
					strings.HasPrefix(c.Warnings[0], "f:1: relaxTransparency = true")
			}},
		{"parent keys", "parentProxy = 10.0.0.2:3128\nparentAuthCredentials = \"u:p\"\nsocksParentProxy = s:1080\nsocksProxyType = socks4a\nsocksUserName = me\nsocksAuthCredentials = a:b\nnoProxy = .local, 10.0.0.0/8",
			func(c *Config) bool {
				return c.ParentProxy == "10.0.0.2:3128" && c.ParentAuthCredentials == "u:p" &&
					c.SocksParentProxy == "s:1080" && c.SocksProxyType == "socks4a" &&
					c.SocksUserName == "me" && c.SocksAuthCredentials == "a:b" && c.NoProxy == ".local, 10.0.0.0/8"
			}},
		{"mitm keys", "mitmCA = /etc/ca\nmitmHosts = *.pypi.org\nupstreamCA = /etc/ca.pem",
			func(c *Config) bool {
				return c.MitmCA == "/etc/ca" && c.MitmHosts == "*.pypi.org" && c.UpstreamCA == "/etc/ca.pem"
			}},
		{"empty value", "logFile =",
			func(c *Config) bool { return c.LogFile == "" }},
		{"no final newline", "proxyPort = 9",
			func(c *Config) bool { return c.ProxyPort == 9 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("f", []byte(tt.input))
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want nil", tt.input, err)
			}
			if !tt.check(c) {
				t.Errorf("Parse(%q) = %+v, check failed", tt.input, c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		line  int
		want  string // substring of the message
	}{
		{"no equals", "# ok\nproxyPort 8123\n", 2, `missing "=" after "proxyPort" (want proxyPort = value; the rest of the line is not shown)`},
		{"unknown variable", "proxyPort = 1\n\nfooBar = 2\n", 3, `unknown variable "fooBar" (want one of allowedClients`},
		{"wrong case", "proxyport = 1", 1, `unknown variable "proxyport" (want proxyPort; names are case-sensitive)`},
		{"wrong case polipo", "DiskCacheRoot = 1", 1, `(want diskCacheRoot; names are case-sensitive)`},
		{"bad name", "proxy-port = 1", 1, `invalid variable name: '-' after "proxy" (want letters and digits`},
		{"empty name", "= 1", 1, `missing variable name before "=" (want name = value)`},
		{"no name", "-x", 1, `missing variable name (want name = value; the line is not shown)`},
		{"bad port", "proxyPort = 70000", 1, `proxyPort: invalid port "70000" (want a number from 0 to 65535)`},
		{"bad size", "cacheSize = 12XB", 1, `cacheSize: invalid size "12XB" (want`},
		{"zero size", "chunkHighMark = 0", 1, `chunkHighMark: invalid size "0" (want more than 0 bytes)`},
		{"ambiguous size", "maxObjectSize = 512k", 1, `ambiguous size "512k" (want KB for powers of 1000 or KiB`},
		{"bad client", "allowedClients = 10.0.0.0/33", 1, `allowedClients: invalid client "10.0.0.0/33"`},
		{"bad ports", "tunnelAllowedPorts = 443, 0", 1, `tunnelAllowedPorts: invalid port or range "0"`},
		{"bad relax", "relaxTransparency = sometimes", 1, `relaxTransparency: invalid value "sometimes" (want false, maybe or true)`},
		{"unterminated quote", `logFile = "/var/log`, 1, `logFile: unterminated quoted value`},
		{"bad address", "proxyAddress = a b", 1, `proxyAddress: invalid address "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("stageproxy.conf", []byte(tt.input))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, want *ParseError", tt.input, err)
			}
			if pe.File != "stageproxy.conf" || pe.Line != tt.line {
				t.Errorf("Parse(%q) at %s:%d, want stageproxy.conf:%d", tt.input, pe.File, pe.Line, tt.line)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %q, want it to contain %q", tt.input, err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Parse(%q) = %q, want one line", tt.input, err)
			}
		})
	}
}

// TestParseErrorsHideThePassword: a mistyped line that holds a password
// is reported with its line number, and without the password.
func TestParseErrorsHideThePassword(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"unterminated credentials", "parentAuthCredentials = \"bob:s3cr3t\n",
			`stageproxy.conf:1: parentAuthCredentials: unterminated quoted value (want a closing "; the value is not shown)`},
		{"unterminated socks credentials", "socksAuthCredentials = bob:\"s3cr3t\n",
			`stageproxy.conf:1: socksAuthCredentials: unterminated quoted value (want a closing "; the value is not shown)`},
		{"unterminated credentials, wrong case", "parentauthcredentials = \"bob:s3cr3t\n",
			`stageproxy.conf:1: parentauthcredentials: unterminated quoted value (want a closing "; the value is not shown)`},
		{"unterminated polipo authCredentials", "authCredentials = \"bob:s3cr3t\n",
			`stageproxy.conf:1: authCredentials: unterminated quoted value (want a closing "; the value is not shown)`},
		{"unterminated parent URL", "parentProxy = \"http://bob:s3cr3t@10.0.0.2:3128\n",
			`stageproxy.conf:1: parentProxy: unterminated quoted value "\"http://bob:xxxxx@10.0.0.2:3128" (want a closing ")`},
		{"credentials without =", "parentAuthCredentials bob:s3cr3t\n",
			`stageproxy.conf:1: missing "=" after "parentAuthCredentials" (want parentAuthCredentials = value; the rest of the line is not shown)`},
		{"credentials with a colon", "parentAuthCredentials: bob:s3=cr3t\n",
			`stageproxy.conf:1: invalid variable name: ':' after "parentAuthCredentials" (want letters and digits, as in proxyPort, then "="; the rest of the line is not shown)`},
		{"a value on its own line", "parentAuthCredentials =\nbob:s3cr3t\n",
			`stageproxy.conf:2: missing "=" after "bob" (want name = value; the rest of the line is not shown)`},
		{"a URL on its own line", "http://bob:s3cr3t@10.0.0.2:3128\n",
			`stageproxy.conf:1: missing "=" after "http" (want name = value; the rest of the line is not shown)`},
		{"a quoted password on its own line", "\"s3cr3t\"\n",
			`stageproxy.conf:1: missing variable name (want name = value; the line is not shown)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("stageproxy.conf", []byte(tt.input))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want %q", tt.input, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "cr3t") {
				t.Errorf("Parse(%q) = %q, which shows the password", tt.input, err)
			}
		})
	}
}

func TestKeyError(t *testing.T) {
	c, err := Parse("stageproxy.conf", []byte("# parent\nparentProxy = a\nnoProxy = x\nparentProxy = b\n"))
	if err != nil {
		t.Fatal(err)
	}
	bad := errors.New(`missing port in "b"`)
	tests := []struct {
		key, want string
		line      int
	}{
		{"parentProxy", `stageproxy.conf:4: parentProxy: missing port in "b"`, 4}, // the last line wins
		{"noProxy", `stageproxy.conf:3: noProxy: missing port in "b"`, 3},
		{"socksProxyType", `socksProxyType: missing port in "b"`, 0}, // a default
	}
	for _, tt := range tests {
		err := c.KeyError(tt.key, bad)
		var pe *ParseError
		if err.Error() != tt.want || errors.As(err, &pe) != (tt.line != 0) || (pe != nil && pe.Line != tt.line) {
			t.Errorf("KeyError(%q) = %v (%T), want %q at line %d", tt.key, err, err, tt.want, tt.line)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.conf")
	_, err := Load(missing)
	if !errors.Is(err, ErrNoConfig) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNoConfig and fs.ErrNotExist", err)
	}

	good := filepath.Join(dir, "good.conf")
	if err := os.WriteFile(good, []byte("proxyPort = 3128\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil || c.ProxyPort != 3128 {
		t.Errorf("Load(good) = %+v, %v, want port 3128", c, err)
	}

	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("\nnope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":2: ") || errors.Is(err, ErrNoConfig) {
		t.Errorf("Load(bad) = %v, want %s:2: ... and not ErrNoConfig", err, bad)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"100MB", 100_000_000, ""},
		{"64MiB", 64 << 20, ""},
		{"512KB", 512_000, ""},
		{"512kib", 512 << 10, ""},
		{"1gb", 1e9, ""},
		{"2GiB", 2 << 30, ""},
		{"1TB", 1e12, ""},
		{"104857600", 104857600, ""},
		{"100B", 100, ""},
		{" 100 MB ", 100_000_000, ""},
		{"0", 0, ""},
		{"", 0, `invalid size ""`},
		{"MB", 0, `invalid size "MB"`},
		{"-1", 0, `invalid size "-1"`},
		{"1.5GB", 0, `invalid size "1.5GB"`},
		{"12XB", 0, `invalid size "12XB" (want a whole number of bytes`},
		{"512k", 0, `ambiguous size "512k"`},
		{"9223372036854775807", 9223372036854775807, ""},
		{"9223372036854775808", 0, `too large`},
		{"9223372036854775807KB", 0, `too large`},
		{"10000000TiB", 0, `too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseSize(%q) = %d, %v, want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePortRanges(t *testing.T) {
	tests := []struct {
		in      string
		want    []PortRange
		wantErr bool
	}{
		{"22, 80, 109-110", []PortRange{{22, 22}, {80, 80}, {109, 110}}, false},
		{"1-65535", []PortRange{{1, 65535}}, false},
		{"443", []PortRange{{443, 443}}, false},
		{"", nil, true},
		{"0", nil, true},
		{"65536", nil, true},
		{"110-109", nil, true},
		{"80,", nil, true},
		{"a-b", nil, true},
		{"-80", nil, true},
		{"+80", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePortRanges(tt.in)
			if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePortRanges(%q) = %v, %v, want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseClients(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"127.0.0.1", []string{"127.0.0.1/32"}, false},
		{"::1, 192.168.1.7/24", []string{"::1/128", "192.168.1.0/24"}, false},
		{"10.0.0.1 10.0.0.2,,10.0.0.3", []string{"10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"}, false},
		{"localhost", nil, true},
		{"fe80::1%eth0", nil, true},
		{"10.0.0.0/33", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseClients(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseClients(%q) = %v, %v, want error %v", tt.in, got, err, tt.wantErr)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if !reflect.DeepEqual(s, tt.want) {
				t.Errorf("ParseClients(%q) = %v, want %v", tt.in, s, tt.want)
			}
		})
	}
}

func TestStatusLinesHideSecrets(t *testing.T) {
	c := Default()
	c.ParentAuthCredentials = "user:hunter2"
	c.SocksAuthCredentials = "user:hunter3"
	for _, kv := range c.StatusLines() {
		if strings.Contains(kv[1], "hunter") {
			t.Errorf("StatusLines() %s = %q, want no password", kv[0], kv[1])
		}
	}
}

func TestEdit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		set  map[string]string
		del  []string
		want string
	}{
		{"append to empty", "", map[string]string{"parentProxy": "10.0.0.2:3128"}, nil,
			"parentProxy = 10.0.0.2:3128\n"},
		{"rewrite keeps others", "# head\nproxyPort = 8123\n\nparentProxy = old:1 # kato\ndiskCacheRoot = \"\"\n",
			map[string]string{"parentProxy": "new:2"}, nil,
			"# head\nproxyPort = 8123\n\nparentProxy = new:2 # kato\ndiskCacheRoot = \"\"\n"},
		{"quote", "x = 1", map[string]string{"parentAuthCredentials": `u:p w#"\`, "noProxy": "a,b"}, nil,
			"x = 1\nnoProxy = \"a,b\"\nparentAuthCredentials = \"u:p w#\\\"\\\\\"\n"},
		{"delete", "parentProxy = a:1\n# keep\nparentAuthCredentials = \"u:p\"\n",
			nil, []string{"parentProxy", "parentAuthCredentials"}, "# keep\n"},
		{"duplicates collapse", "parentProxy = a:1\nproxyPort = 1\nparentProxy = b:1\n",
			map[string]string{"parentProxy": "c:1"}, nil, "parentProxy = c:1\nproxyPort = 1\n"},
		{"crlf", "# c\r\nproxyPort = 1\r\n", map[string]string{"proxyPort": "2", "logFile": "x"}, nil,
			"# c\r\nproxyPort = 2\r\nlogFile = x\r\n"},
		{"newline in value", "", map[string]string{"parentProxy": "a:1\nproxyPort = 9"}, nil,
			"parentProxy = \"a:1 proxyPort = 9\"\n"},
		{"no final newline", "# c", map[string]string{"proxyPort": "2"}, nil, "# c\nproxyPort = 2\n"},
		{"bad lines kept", "garbage line\n", nil, []string{"garbage"}, "garbage line\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(Edit([]byte(tt.in), tt.set, tt.del))
			if got != tt.want {
				t.Errorf("Edit(%q, %v, %v) = %q, want %q", tt.in, tt.set, tt.del, got, tt.want)
			}
		})
	}
}

// TestEditRoundTrip checks that Parse reads back what Edit wrote.
func TestEditRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", "with space", `q"uote`, `back\slash`, "#hash", "a, b", " lead", "trail "} {
		out := Edit([]byte(stackato), map[string]string{"parentAuthCredentials": v}, nil)
		c, err := Parse("edited", out)
		if err != nil {
			t.Fatalf("Parse(Edit(%q)) = %v", v, err)
		}
		if c.ParentAuthCredentials != v {
			t.Errorf("Parse(Edit(%q)).ParentAuthCredentials = %q", v, c.ParentAuthCredentials)
		}
		if c.CacheSize != 104857600 {
			t.Errorf("Edit(%q) lost chunkHighMark", v)
		}
	}
}
