package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// badParentFiles are config files with a mistake in a parent key, each
// holding the password "s3cr3t", and the "FILE:LINE: key:" their errors
// must start with (after the file name).
var badParentFiles = []struct {
	name, file, want string
}{
	{"credentials in parentProxy", "# corp\nparentProxy = bob:s3cr3t@127.0.0.1:3128\n",
		`:2: parentProxy: credentials in "bob:xxxxx@127.0.0.1:3128"`},
	{"URL in parentProxy", "parentProxy = http://bob:s3cr3t@127.0.0.1:3128\n",
		`:1: parentProxy: unexpected scheme in "http://bob:xxxxx@127.0.0.1:3128"`},
	{"URL in socksParentProxy", "cacheSize = 10MB\nsocksParentProxy = socks5://u:s3cr3t@127.0.0.1:1080\n",
		`:2: socksParentProxy: unexpected scheme in "socks5://u:xxxxx@127.0.0.1:1080"`},
	{"unterminated credentials", "parentProxy = 127.0.0.1:3128\nparentAuthCredentials = \"bob:s3cr3t\n",
		`:2: parentAuthCredentials: unterminated quoted value (want a closing "; the value is not shown)`},
	{"credentials without a colon", "parentProxy = 127.0.0.1:3128\n\nparentAuthCredentials = s3cr3t\n",
		`:3: parentAuthCredentials: no ":" between user and password`},
	{"socks5 credentials on a socks4 parent", "socksParentProxy = 127.0.0.1:1080\nsocksProxyType = socks4\nsocksAuthCredentials = bob:s3cr3t\n",
		`:3: socksAuthCredentials: a socks4 parent takes a user id, not a password`},
	{"unsupported socksProxyType", "socksParentProxy = 127.0.0.1:1080\nsocksProxyType = socks6\nsocksAuthCredentials = bob:s3cr3t\n",
		`:2: socksProxyType: unsupported value "socks6"`},
	{"bad noProxy", "parentProxy = 127.0.0.1:3128\nparentAuthCredentials = bob:s3cr3t\n\n\nnoProxy = 10.0.0.0/33\n",
		`:5: noProxy: invalid entry "10.0.0.0/33"`},
	{"missing port", "parentProxy = nohost\nparentAuthCredentials = bob:s3cr3t\n",
		`:1: parentProxy: missing port in "nohost"`},
}

// TestConfigErrorsNameTheLineNotThePassword runs serve, show and delete
// ADDR on each bad file: every one fails with one line that names the file,
// the line and the key, and never the password.
func TestConfigErrorsNameTheLineNotThePassword(t *testing.T) {
	for _, tt := range badParentFiles {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "stageproxy.conf", tt.file)
			for _, c := range []struct {
				args []string
				code int
			}{
				{[]string{"serve", "--config", path, "--listen", "127.0.0.1:0"}, 2},
				{[]string{"upstream_proxy", "show", "--config", path}, 1},
				{[]string{"upstream_proxy", "delete", "--config", path, "127.0.0.1:3128"}, 1},
			} {
				var stdout, stderr bytes.Buffer
				code := runEnv(t.Context(), c.args, nil, &stdout, &stderr, func(string) string { return "" })
				out := stdout.String() + stderr.String()
				if code != c.code || !strings.Contains(out, path+tt.want) || strings.Count(out, "\n") != 1 {
					t.Errorf("run(%q) = %d, output %q; want exit %d and one line with %q", c.args, code, out, c.code, path+tt.want)
				}
				if strings.Contains(out, "cr3t") {
					t.Errorf("run(%q) output %q shows the password", c.args, out)
				}
			}
		})
	}
}

// TestReloadErrorsNameTheLineNotThePassword: a running serve logs each bad
// file with its file and line, without the password, and keeps going.
func TestReloadErrorsNameTheLineNotThePassword(t *testing.T) {
	conf := writeFile(t, "stageproxy.conf", "cacheSize = 10MB\n")
	_, _, log, _ := startServe(t, conf, nil)
	for _, tt := range badParentFiles {
		tmp := conf + ".tmp"
		if err := os.WriteFile(tmp, []byte(tt.file), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, conf); err != nil {
			t.Fatal(err)
		}
		line := waitLog(t, log, "config file not applied")
		if want := strings.ReplaceAll(strings.Trim(tt.want, ":"), `"`, `\"`); !strings.Contains(line, conf+":"+want) {
			t.Errorf("%s: log line %q, want it to contain %q", tt.name, line, conf+":"+want)
		}
		if strings.Contains(line, "cr3t") {
			t.Errorf("%s: log line %q shows the password", tt.name, line)
		}
	}
	if strings.Contains(log.String(), "cr3t") {
		t.Errorf("log shows the password:\n%s", log.String())
	}
}
