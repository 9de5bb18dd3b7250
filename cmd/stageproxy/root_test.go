package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes a file in a temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunExitCodes runs command lines that fail before the proxy listens, or
// do not serve at all, and checks the exit status and the one-line message.
func TestRunExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.conf")
	unknownKey := writeFile(t, "unknown.conf", "# stageproxy\nproxyPort = 8123\nfooBar = 1\n")
	mitm := writeFile(t, "mitm.conf", "mitmHosts = *.pypi.org\n")
	empty := writeFile(t, "empty.conf", "")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		stdout   string
		stderrRe string // substring of stderr
	}{
		{"version", []string{"version"}, nil, 0, "stageproxy dev\n", ""},
		{"no command", nil, nil, 2, "", "stageproxy: missing command"},
		{"unknown command", []string{"frobnicate"}, nil, 2, "", `stageproxy: unknown command "frobnicate"`},
		{"version with argument", []string{"version", "x"}, nil, 2, "", "stageproxy version: "},
		{"unknown flag", []string{"serve", "--bogus"}, nil, 2, "", "stageproxy serve: unknown flag: --bogus"},
		{"serve argument", []string{"serve", "extra"}, nil, 2, "", "stageproxy serve: "},
		{"bad cache size", []string{"serve", "--cache-size", "12XB"}, nil, 2, "",
			`stageproxy serve: --cache-size: invalid size "12XB" (want`},
		{"bad max object size", []string{"serve", "--max-object-size", "0"}, nil, 2, "",
			`stageproxy serve: --max-object-size: invalid size "0"`},
		{"bad listen", []string{"serve", "--listen", "localhost"}, nil, 2, "",
			`stageproxy serve: --listen: invalid address "localhost" (want HOST:PORT`},
		{"mitm CA without hosts", []string{"serve", "--config", empty, "--mitm-ca", "/etc/ca"}, nil, 2, "",
			"stageproxy serve: --mitm-ca needs --mitm-hosts"},
		{"mitm key without CA", []string{"serve", "--config", mitm}, nil, 2, "",
			"needs --mitm-ca"},
		{"bad mitm host", []string{"serve", "--config", empty, "--mitm-ca", "/etc/ca", "--mitm-hosts", "pypi.org,a/b"}, nil, 2, "",
			"stageproxy serve: --mitm-hosts: "},
		{"missing mitm CA", []string{"serve", "--config", empty, "--mitm-ca", missing, "--mitm-hosts", "pypi.org"}, nil, 1, "",
			"stageproxy serve: --mitm-ca: "},
		{"upstream CA not PEM", []string{"serve", "--config", empty, "--upstream-ca", empty}, nil, 2, "",
			"stageproxy serve: --upstream-ca: no PEM certificate in " + empty},
		{"unknown config key", []string{"serve", "--config", unknownKey}, nil, 2, "",
			"stageproxy serve: " + unknownKey + `:3: unknown variable "fooBar"`},
		// A missing file that was named explicitly is a runtime failure
		// (exit 1), like any other file that cannot be read: the command
		// line itself is well-formed.
		{"missing explicit config", []string{"serve", "--config", missing}, nil, 1, "",
			"stageproxy serve: config " + missing + ": no config file"},
		{"missing config from environment", []string{"serve"}, map[string]string{"STAGEPROXY_CONFIG": missing}, 1, "",
			"stageproxy serve: config " + missing + ": no config file"},
		{"flag beats environment", []string{"serve", "--config", unknownKey}, map[string]string{"STAGEPROXY_CONFIG": missing}, 2, "",
			unknownKey + ":3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tt.env[k] }
			code := runEnv(t.Context(), tt.args, nil, &stdout, &stderr, getenv)
			if code != tt.code {
				t.Errorf("run(%q) = %d, want %d; stderr %q", tt.args, code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("run(%q) stdout = %q, want %q", tt.args, stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderrRe) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", tt.args, stderr.String(), tt.stderrRe)
			}
			if n := strings.Count(stderr.String(), "\n"); tt.code != 0 && n != 1 {
				t.Errorf("run(%q) stderr has %d lines, want 1: %q", tt.args, n, stderr.String())
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		name         string
		flag, env    string
		want         string
		wantExplicit bool
	}{
		{"default", "", "", defaultConfigPath, false},
		{"environment", "", "/env.conf", "/env.conf", true},
		{"flag", "/flag.conf", "/env.conf", "/flag.conf", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &globals{configFlag: tt.flag, getenv: func(string) string { return tt.env }}
			got, explicit := g.configPath()
			if got != tt.want || explicit != tt.wantExplicit {
				t.Errorf("configPath() = %q, %v, want %q, %v", got, explicit, tt.want, tt.wantExplicit)
			}
		})
	}
}
