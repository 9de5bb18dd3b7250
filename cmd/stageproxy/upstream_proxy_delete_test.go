package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewUpstreamProxyDeleteOptions(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantAddr string // "" for no ADDR
		wantErr  string
	}{
		{"no addr", nil, "", ""},
		{"host port", []string{"192.168.0.99:3128"}, "192.168.0.99:3128", ""},
		{"url with password", []string{"socks5://u:secret@10.0.0.3:1080/"}, "10.0.0.3:1080", ""},
		{"bad port", []string{"h:0"}, "", `invalid port "0" in "h:0" (want 1-65535)`},
		{"bad scheme", []string{"ftp://h:21"}, "", `unsupported scheme "ftp"`},
		{"two", []string{"a:1", "b:2"}, "", "want at most one ADDR, got 2 arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := newUpstreamProxyDeleteOptions(tt.args, "/c.conf", io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("newUpstreamProxyDeleteOptions(%q) = %v, want error %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newUpstreamProxyDeleteOptions(%q) = %v", tt.args, err)
			}
			got := ""
			if o.addr != nil {
				got = o.addr.Addr
			}
			if got != tt.wantAddr {
				t.Errorf("newUpstreamProxyDeleteOptions(%q).addr = %q, want %q", tt.args, got, tt.wantAddr)
			}
		})
	}
}

func TestUpstreamProxyDeleteRun(t *testing.T) {
	withHTTP := stackatoConf + "parentProxy = 192.168.0.99:3128 # core node\nparentAuthCredentials = u:secret\nnoProxy = .local\n"
	withSOCKS := stackatoConf + "socksParentProxy = [fd00::3]:1080\nsocksProxyType = socks4a\nsocksUserName = builder\n"
	tests := []struct {
		name     string
		file     string
		args     []string
		wantFile string
		stderr   string // with FILE for the path
		wantErr  string // exit 1, file unchanged
	}{
		{"no addr", withHTTP, nil, stackatoConf,
			"stageproxy: upstream proxy http://u:xxxxx@192.168.0.99:3128 deleted from FILE; stageproxy connects directly (a running stageproxy applies it within 2 s)\n", ""},
		{"matching addr", withHTTP, []string{"192.168.0.99:3128"}, stackatoConf, "deleted from FILE", ""},
		{"matching url form", withHTTP, []string{"http://other:pw@192.168.0.99:3128"}, stackatoConf, "deleted from FILE", ""},
		{"matching ipv6 socks", withSOCKS, []string{"socks4a://[FD00:0::3]:1080"}, stackatoConf,
			"stageproxy: upstream proxy socks4a://builder@[fd00::3]:1080 deleted", ""},
		{"other addr", withHTTP, []string{"10.0.0.9:3128"}, withHTTP, "",
			"the upstream proxy in effect is http://u:xxxxx@192.168.0.99:3128, not 10.0.0.9:3128; nothing deleted (want delete without ADDR, or delete with the parent's HOST:PORT)"},
		// An explicit scheme names a kind of parent, and a parent of
		// another kind at the same HOST:PORT is not that one.
		{"other kind", withHTTP, []string{"socks5://192.168.0.99:3128"}, withHTTP, "",
			"the upstream proxy in effect is http://u:xxxxx@192.168.0.99:3128, not socks5://192.168.0.99:3128; nothing deleted"},
		{"other socks kind", withSOCKS, []string{"socks5h://[fd00::3]:1080"}, withSOCKS, "",
			"the upstream proxy in effect is socks4a://builder@[fd00::3]:1080, not socks5://[fd00::3]:1080; nothing deleted"},
		{"socks4 is not socks4a", withSOCKS, []string{"socks4://[fd00::3]:1080"}, withSOCKS, "",
			"not socks4://[fd00::3]:1080; nothing deleted"},
		{"http scheme on a socks parent", withSOCKS, []string{"http://[fd00::3]:1080"}, withSOCKS, "",
			"not http://[fd00::3]:1080; nothing deleted"},
		{"bare addr matches any kind", withSOCKS, []string{"[fd00::3]:1080"}, stackatoConf, "deleted", ""},
		{"http through socks, socks named", withHTTP + "socksParentProxy = 10.0.0.3:1080\n", []string{"socks5://10.0.0.3:1080"}, stackatoConf, "deleted", ""},
		{"nothing set", stackatoConf, nil, stackatoConf, "stageproxy: no upstream proxy was set in FILE; nothing to delete\n", ""},
		{"nothing set with addr", stackatoConf, []string{"10.0.0.9:3128"}, stackatoConf, "nothing to delete", ""},
		{"stale keys are cleaned", stackatoConf + "noProxy = .local\n", nil, stackatoConf, "nothing to delete", ""},
		{"invalid file", stackatoConf + "fooBar = 1\n", nil, stackatoConf + "fooBar = 1\n", "",
			`:18: unknown variable "fooBar"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "stageproxy.conf", tt.file)
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			o, err := newUpstreamProxyDeleteOptions(tt.args, path, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			err = upstreamProxyDeleteRun(t.Context(), o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err, true) != 1 {
					t.Errorf("upstreamProxyDeleteRun(%q) = %v, want exit 1 error containing %q", tt.args, err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("upstreamProxyDeleteRun(%q) = %v", tt.args, err)
			}
			if got := readString(t, path); got != tt.wantFile {
				t.Errorf("file =\n%s\nwant\n%s", got, tt.wantFile)
			}
			if got := perm(t, path); got != 0o600 {
				t.Errorf("mode = %o, want 600 (kept)", got)
			}
			if want := strings.ReplaceAll(tt.stderr, "FILE", path); !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
			}
			if strings.Contains(stderr.String()+fmtErr(err), "secret") {
				t.Errorf("output shows the password: %q %v", stderr.String(), err)
			}
			noTempFiles(t, path)
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestUpstreamProxyDeleteRunMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stageproxy.conf")
	var stderr bytes.Buffer
	o, err := newUpstreamProxyDeleteOptions([]string{"10.0.0.9:3128"}, path, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := upstreamProxyDeleteRun(t.Context(), o); err != nil {
		t.Fatalf("upstreamProxyDeleteRun() = %v, want nil", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("delete created the config file: %v", err)
	}
	if want := "stageproxy: no upstream proxy was set (" + path + " does not exist); nothing to delete\n"; stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}
