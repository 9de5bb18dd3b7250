package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpstreamProxyShowRun(t *testing.T) {
	tests := []struct {
		name    string
		file    string // "" for no file
		want    string
		wantErr string
	}{
		{"no file", "", "none (direct)\n", ""},
		{"no parent", stackatoConf + "noProxy = .local\n", "none (direct)\n", ""},
		{"http with password", stackatoConf + "parentProxy = 10.0.0.2:3128\nparentAuthCredentials = \"user:s3cr3t\"\nnoProxy = .local, 10.0.0.0/8\n",
			"http://user:xxxxx@10.0.0.2:3128\nno-proxy: .local, 10.0.0.0/8\n", ""},
		{"socks5", "socksParentProxy = 10.0.0.3:1080\n", "socks5://10.0.0.3:1080\n", ""},
		{"socks5 with password", "socksParentProxy = 10.0.0.3:1080\nsocksAuthCredentials = b:s3cr3t\n", "socks5://b:xxxxx@10.0.0.3:1080\n", ""},
		{"http via socks", "parentProxy = p:3128\nparentAuthCredentials = u:s3cr3t\nsocksParentProxy = s:1080\nsocksProxyType = socks4a\nsocksUserName = id\n",
			"http://u:xxxxx@p:3128 via socks4a://id@s:1080\n", ""},
		{"bad parent", "parentProxy = 10.0.0.2\n", "", `stageproxy.conf:1: parentProxy: missing port in "10.0.0.2" (want HOST:PORT)`},
		{"bad file", "proxyPort = x\n", "", `:1: proxyPort: invalid port "x"`},
		// A socks5 password left behind when socksProxyType was changed
		// by hand: never printed, never taken as the SOCKS4 user id.
		{"socks4 with socksAuthCredentials", "socksParentProxy = 10.0.0.3:1080\nsocksProxyType = socks4\nsocksAuthCredentials = bob:s3cr3t\n",
			"", `socksAuthCredentials: a socks4 parent takes a user id, not a password`},
		{"socks4a with socksAuthCredentials and a user id", "socksParentProxy = 10.0.0.3:1080\nsocksProxyType = socks4a\nsocksUserName = bob\nsocksAuthCredentials = bob:s3cr3t\n",
			"", `socksAuthCredentials: a socks4a parent takes a user id, not a password`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "missing.conf")
			if tt.file != "" {
				path = writeFile(t, "stageproxy.conf", tt.file)
			}
			var stdout bytes.Buffer
			err := upstreamProxyShowRun(t.Context(), newUpstreamProxyShowOptions(path, &stdout))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err, true) != 1 {
					t.Errorf("upstreamProxyShowRun() = %v, want exit 1 error containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("upstreamProxyShowRun() = %v", err)
			}
			if stdout.String() != tt.want {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.want)
			}
			if strings.Contains(stdout.String(), "s3cr3t") {
				t.Errorf("show printed the password: %q", stdout.String())
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("show's error shows the password: %v", err)
			}
		})
	}
}

// TestUpstreamProxyCommandLines runs whole command lines through runEnv:
// exit codes, stdout/stderr split, stdin and --config resolution.
func TestUpstreamProxyCommandLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stageproxy.conf")
	env := map[string]string{"STAGEPROXY_CONFIG": path}
	steps := []struct {
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string // substring
	}{
		{[]string{"upstream_proxy", "show"}, "", 0, "none (direct)\n", ""},
		{[]string{"upstream_proxy", "set", "proxy.example"}, "", 2, "",
			"stageproxy upstream_proxy set: missing port in \"proxy.example\" (want HOST:PORT)\n"},
		{[]string{"upstream_proxy", "set"}, "", 2, "", "stageproxy upstream_proxy set: accepts 1 arg(s), received 0"},
		{[]string{"upstream_proxy", "set", "-u", "u", "-p", "x", "--password-stdin", "h:1"}, "", 2, "", "-p and --password-stdin both given"},
		{[]string{"upstream_proxy", "set", "-u", "builder", "--password-stdin", "socks5://10.0.0.3:1080"}, "s3cr3t\n", 0, "",
			"stageproxy: upstream proxy set to socks5://builder:xxxxx@10.0.0.3:1080 in " + path + " (a running stageproxy applies it within 2 s)\n"},
		{[]string{"upstream_proxy", "show"}, "", 0, "socks5://builder:xxxxx@10.0.0.3:1080\n", ""},
		// kato's spelling, flags after ADDR.
		{[]string{"upstream_proxy", "set", "proxy.company.com:8080", "-u", "u", "--pass", "s3cr3t"}, "", 0, "", "set to http://u:xxxxx@proxy.company.com:8080"},
		{[]string{"upstream_proxy", "delete", "10.0.0.9:3128"}, "", 1, "", "stageproxy upstream_proxy delete: the upstream proxy in effect is http://u:xxxxx@proxy.company.com:8080, not 10.0.0.9:3128"},
		{[]string{"upstream_proxy", "delete", "proxy.company.com:8080"}, "", 0, "", "deleted from " + path},
		{[]string{"upstream_proxy", "delete"}, "", 0, "", "nothing to delete"},
		{[]string{"upstream_proxy", "frobnicate"}, "", 2, "", `unknown command "frobnicate" for "stageproxy upstream_proxy"`},
		{[]string{"upstream_proxy"}, "", 0, "", ""},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		code := runEnv(t.Context(), s.args, strings.NewReader(s.stdin), &stdout, &stderr, func(k string) string { return env[k] })
		if code != s.code {
			t.Errorf("run(%q) = %d, want %d; stderr %q", s.args, code, s.code, stderr.String())
		}
		if len(s.args) == 1 {
			if !strings.Contains(stdout.String(), "stageproxy upstream_proxy set 192.168.0.99:3128") {
				t.Errorf("run(%q) stdout = %q, want the help with its examples", s.args, stdout.String())
			}
			continue
		}
		if stdout.String() != s.stdout {
			t.Errorf("run(%q) stdout = %q, want %q", s.args, stdout.String(), s.stdout)
		}
		if !strings.Contains(stderr.String(), s.stderr) || strings.Count(stderr.String(), "\n") > 1 {
			t.Errorf("run(%q) stderr = %q, want one line containing %q", s.args, stderr.String(), s.stderr)
		}
		if strings.Contains(stdout.String()+stderr.String(), "s3cr3t") {
			t.Errorf("run(%q) printed the password", s.args)
		}
	}
	noTempFiles(t, path)
}
