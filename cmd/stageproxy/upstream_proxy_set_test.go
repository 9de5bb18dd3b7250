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

	"github.com/stageproxy/stageproxy/upstream"
)

// stackatoConf is a Stackato-era Polipo config (FIELD-NOTES 7.3) with the
// comments an operator adds by hand.
const stackatoConf = `# Polipo on the Stackato proxy node
# (hpcloud/stackato-cluster-tool stackato-automation/etc/polipo/config)
proxyAddress = "::0"
proxyPort = 8123

diskCacheRoot = ""   # memory only
chunkHighMark = 104857600
objectHighMark = 16384
allowedPorts = 1-65535
disableVia = false
maxAge = 0
maxAgeFraction = 0
maxExpiresAge = 0
maxNoModifiedAge = 0
relaxTransparency = maybe # serve stale data when the origin is down
dnsUseGethostbyname = happily
logFile = /var/log/polipo/polipo.log
`

func TestNewUpstreamProxySetOptions(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name    string
		flags   upstreamProxySetFlags
		args    []string
		want    upstream.Parent
		stdin   bool
		noProxy *string
		wantErr string
	}{
		{"host port", upstreamProxySetFlags{}, []string{"192.168.0.99:3128"},
			upstream.Parent{Kind: upstream.HTTP, Addr: "192.168.0.99:3128"}, false, nil, ""},
		{"kato -u -p", upstreamProxySetFlags{user: "u", userSet: true, password: "secret", passwordSet: true}, []string{"proxy:8080"},
			upstream.Parent{Kind: upstream.HTTP, Addr: "proxy:8080", User: "u", Password: "secret"}, false, nil, ""},
		{"-u replaces ADDR's user and password", upstreamProxySetFlags{user: "bob", userSet: true}, []string{"http://alice:secret@h:1"},
			upstream.Parent{Kind: upstream.HTTP, Addr: "h:1", User: "bob"}, false, nil, ""},
		{"-p replaces ADDR's password", upstreamProxySetFlags{password: "new", passwordSet: true}, []string{"socks5://alice:old@h:1"},
			upstream.Parent{Kind: upstream.SOCKS5, Addr: "h:1", User: "alice", Password: "new"}, false, nil, ""},
		{"password stdin", upstreamProxySetFlags{user: "builder", userSet: true, passwordStdin: true}, []string{"socks5://10.0.0.3:1080"},
			upstream.Parent{Kind: upstream.SOCKS5, Addr: "10.0.0.3:1080", User: "builder"}, true, nil, ""},
		{"socks4a user id", upstreamProxySetFlags{user: "builder", userSet: true}, []string{"socks4a://10.0.0.4:1080"},
			upstream.Parent{Kind: upstream.SOCKS4a, Addr: "10.0.0.4:1080", User: "builder"}, false, nil, ""},
		{"no proxy normalised", upstreamProxySetFlags{noProxy: ".local,10.0.0.0/8  localhost", noProxySet: true}, []string{"h:1"},
			upstream.Parent{Kind: upstream.HTTP, Addr: "h:1"}, false, str(".local, 10.0.0.0/8, localhost"), ""},
		{"empty no proxy removes it", upstreamProxySetFlags{noProxySet: true}, []string{"h:1"},
			upstream.Parent{Kind: upstream.HTTP, Addr: "h:1"}, false, str(""), ""},

		{"bad scheme", upstreamProxySetFlags{}, []string{"ftp://h:21"}, upstream.Parent{}, false, nil,
			`unsupported scheme "ftp" (want http, socks4, socks4a or socks5)`},
		{"bad port", upstreamProxySetFlags{}, []string{"h:99999"}, upstream.Parent{}, false, nil,
			`invalid port "99999" in "h:99999" (want 1-65535)`},
		{"empty host", upstreamProxySetFlags{}, []string{"http://:3128"}, upstream.Parent{}, false, nil,
			`missing host in "http://:3128" (want http://HOST:PORT)`},
		{"-p and --password-stdin", upstreamProxySetFlags{user: "u", userSet: true, password: "secret", passwordSet: true, passwordStdin: true}, []string{"h:1"},
			upstream.Parent{}, false, nil, `-p and --password-stdin both given (want one of them)`},
		{"password without user", upstreamProxySetFlags{password: "secret", passwordSet: true}, []string{"h:1"}, upstream.Parent{}, false, nil,
			`a password needs a user (want -u USER, or http://USER@h:1)`},
		{"password stdin without user", upstreamProxySetFlags{passwordStdin: true}, []string{"socks5://h:1"}, upstream.Parent{}, false, nil,
			`a password needs a user (want -u USER, or socks5://USER@h:1)`},
		{"socks4a with a password", upstreamProxySetFlags{user: "u", userSet: true, passwordStdin: true}, []string{"socks4a://h:1"}, upstream.Parent{}, false, nil,
			`socks4a parent takes a user id, not a password (want socks4a://USERID@HOST:PORT)`},
		{"newline in password", upstreamProxySetFlags{user: "u", userSet: true, password: "sec\nret", passwordSet: true}, []string{"h:1"}, upstream.Parent{}, false, nil,
			`the password contains a control character such as a newline (want printable characters only)`},
		{"empty user", upstreamProxySetFlags{userSet: true}, []string{"h:1"}, upstream.Parent{}, false, nil,
			`--user: empty user (want a user name, or no -u)`},
		{"bad no proxy", upstreamProxySetFlags{noProxy: "a@b", noProxySet: true}, []string{"h:1"}, upstream.Parent{}, false, nil,
			`--no-proxy: invalid entry "a@b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := newUpstreamProxySetOptions(tt.flags, tt.args, "/c.conf", strings.NewReader(""), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("newUpstreamProxySetOptions(%+v, %q) = %v, want error %q", tt.flags, tt.args, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("newUpstreamProxySetOptions(%+v, %q) = %v", tt.flags, tt.args, err)
			}
			if o.parent != tt.want || o.passwordStdin != tt.stdin || (o.noProxy == nil) != (tt.noProxy == nil) ||
				(o.noProxy != nil && *o.noProxy != *tt.noProxy) || o.configPath != "/c.conf" {
				t.Errorf("newUpstreamProxySetOptions(%+v, %q) = %+v, want parent %+v stdin %v", tt.flags, tt.args, o, tt.want, tt.stdin)
			}
		})
	}
}

// setRun runs set with ADDR on path (and stdin), failing the test on error.
func setRun(t *testing.T, path string, f upstreamProxySetFlags, addr, stdin string) (stderr string) {
	t.Helper()
	var buf bytes.Buffer
	o, err := newUpstreamProxySetOptions(f, []string{addr}, path, strings.NewReader(stdin), &buf)
	if err != nil {
		t.Fatalf("newUpstreamProxySetOptions(%q) = %v", addr, err)
	}
	if err := upstreamProxySetRun(t.Context(), o); err != nil {
		t.Fatalf("upstreamProxySetRun(%q) = %v", addr, err)
	}
	return buf.String()
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// noTempFiles checks that path's directory holds only path.
func noTempFiles(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("%s left behind in %s", e.Name(), filepath.Dir(path))
		}
	}
}

func TestUpstreamProxySetRunKeepsHandWrittenFile(t *testing.T) {
	path := writeFile(t, "stageproxy.conf", stackatoConf)
	stderr := setRun(t, path, upstreamProxySetFlags{}, "192.168.0.99:3128", "")
	if got, want := readString(t, path), stackatoConf+"parentProxy = 192.168.0.99:3128\n"; got != want {
		t.Errorf("file after set =\n%s\nwant\n%s", got, want)
	}
	if got := perm(t, path); got != 0o644 {
		t.Errorf("mode after set without credentials = %o, want 644 (kept)", got)
	}
	want := "stageproxy: upstream proxy set to http://192.168.0.99:3128 in " + path + " (a running stageproxy applies it within 2 s)\n"
	if stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	noTempFiles(t, path)
}

func TestUpstreamProxySetRunCredentialMakesFile0600(t *testing.T) {
	path := writeFile(t, "stageproxy.conf", stackatoConf)
	stderr := setRun(t, path, upstreamProxySetFlags{user: "u", userSet: true, password: "s3cr3t", passwordSet: true}, "http://10.0.0.2:3128", "")
	if got := perm(t, path); got != 0o600 {
		t.Errorf("mode with a credential = %o, want 600", got)
	}
	if got, want := readString(t, path), stackatoConf+"parentAuthCredentials = u:s3cr3t\nparentProxy = 10.0.0.2:3128\n"; got != want {
		t.Errorf("file =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(stderr, "s3cr3t") || !strings.Contains(stderr, "http://u:xxxxx@10.0.0.2:3128") {
		t.Errorf("stderr = %q, want the redacted parent", stderr)
	}
	// A socks4a user id is not a secret: the mode stays as it is.
	path2 := writeFile(t, "stageproxy.conf", stackatoConf)
	setRun(t, path2, upstreamProxySetFlags{}, "socks4a://builder@10.0.0.4:1080", "")
	if got := perm(t, path2); got != 0o644 {
		t.Errorf("mode with a socks4a user id = %o, want 644", got)
	}
}

func TestUpstreamProxySetRunReplacesParent(t *testing.T) {
	path := writeFile(t, "stageproxy.conf", stackatoConf+
		"socksParentProxy = 10.0.0.3:1080 # old gateway\nsocksProxyType = socks5\nsocksAuthCredentials = old:secret\nnoProxy = .local\n")
	stderr := setRun(t, path, upstreamProxySetFlags{}, "proxy.company.com:8080", "")
	if got, want := readString(t, path), stackatoConf+"noProxy = .local\nparentProxy = proxy.company.com:8080\n"; got != want {
		t.Errorf("file =\n%s\nwant\n%s", got, want)
	}
	want := "stageproxy: upstream proxy set to http://proxy.company.com:8080 in " + path +
		" (replacing socks5://old:xxxxx@10.0.0.3:1080; a running stageproxy applies it within 2 s)\n"
	if stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	// The credential is gone, but the 0600 mode the file got for it stays.
	setRun(t, path, upstreamProxySetFlags{noProxy: "", noProxySet: true}, "socks5://u:p@10.0.0.3:1080", "")
	setRun(t, path, upstreamProxySetFlags{}, "10.0.0.2:3128", "")
	if got, want := readString(t, path), stackatoConf+"parentProxy = 10.0.0.2:3128\n"; got != want {
		t.Errorf("file =\n%s\nwant\n%s", got, want)
	}
	if got := perm(t, path); got != 0o600 {
		t.Errorf("mode = %o, want 600 (never loosened)", got)
	}
	noTempFiles(t, path)
}

func TestUpstreamProxySetRunPasswordStdin(t *testing.T) {
	for _, stdin := range []string{"s3cr3t\n", "s3cr3t\r\n", "s3cr3t", "s3cr3t\nignored\n"} {
		path := filepath.Join(t.TempDir(), "stageproxy.conf")
		stderr := setRun(t, path, upstreamProxySetFlags{user: "builder", userSet: true, passwordStdin: true}, "socks5://10.0.0.3:1080", stdin)
		want := "socksAuthCredentials = builder:s3cr3t\nsocksParentProxy = 10.0.0.3:1080\nsocksProxyType = socks5\n"
		if got := readString(t, path); got != want {
			t.Errorf("stdin %q: file =\n%s\nwant\n%s", stdin, got, want)
		}
		if got := perm(t, path); got != 0o600 {
			t.Errorf("stdin %q: mode = %o, want 600", stdin, got)
		}
		if strings.Contains(stderr, "s3cr3t") {
			t.Errorf("stderr %q shows the password", stderr)
		}
	}
}

func TestUpstreamProxySetRunRefusals(t *testing.T) {
	invalid := "proxyPort = 8123\n# next line is wrong\nfooBar = 1\n"
	tests := []struct {
		name    string
		file    *string // nil: no file
		stdin   string
		wantErr string
		usage   bool // exit 2
	}{
		{"invalid existing file", &invalid, "pw\n", ":3: unknown variable \"fooBar\"", false},
		{"empty stdin", nil, "", "--password-stdin: no password on standard input (want it on the first line)", true},
		{"blank first line", nil, "\nsecret\n", "--password-stdin: no password on standard input", true},
		{"control character on stdin", nil, "sec\x00ret\n", "--password-stdin: the password contains a control character", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stageproxy.conf")
			if tt.file != nil {
				if err := os.WriteFile(path, []byte(*tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			o, err := newUpstreamProxySetOptions(upstreamProxySetFlags{user: "u", userSet: true, passwordStdin: true},
				[]string{"socks5://10.0.0.3:1080"}, path, strings.NewReader(tt.stdin), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			err = upstreamProxySetRun(t.Context(), o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("upstreamProxySetRun() = %v, want error containing %q", err, tt.wantErr)
			}
			var ue *usageError
			if errors.As(err, &ue) != tt.usage || exitCode(err, true) != map[bool]int{true: 2, false: 1}[tt.usage] {
				t.Errorf("exitCode(%v) = %d, want usage %v", err, exitCode(err, true), tt.usage)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
			if tt.file == nil {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("config file written: %v", err)
				}
			} else if got := readString(t, path); got != *tt.file {
				t.Errorf("file changed to %q", got)
			}
			noTempFiles(t, path)
		})
	}
}

func TestUpstreamProxySetRunMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "stageproxy.conf")
	o, err := newUpstreamProxySetOptions(upstreamProxySetFlags{}, []string{"h:1"}, path, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = upstreamProxySetRun(t.Context(), o)
	want := "directory " + filepath.Dir(path) + " does not exist (create it, or name another file with --config)"
	if err == nil || !strings.Contains(err.Error(), want) || exitCode(err, true) != 1 {
		t.Errorf("upstreamProxySetRun() = %v, want exit 1 error containing %q", err, want)
	}
}

func TestUpstreamProxySetRunFollowsSymlink(t *testing.T) {
	target := writeFile(t, "real.conf", "proxyPort = 8123\n")
	link := filepath.Join(t.TempDir(), "link.conf")
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	setRun(t, link, upstreamProxySetFlags{}, "h:1", "")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced: %v", err)
	}
	if got := readString(t, target); got != "proxyPort = 8123\nparentProxy = h:1\n" {
		t.Errorf("target = %q", got)
	}
}
