package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stageproxy/stageproxy/mitm"
)

func TestNewCAInitOptions(t *testing.T) {
	tests := []struct {
		name, out, wantErr string
	}{
		{"dir", "/etc/stageproxy/ca", ""},
		{"relative dir", "ca", ""},
		{"missing --out", "", "missing --out DIR (want the directory for ca.crt and ca.key, e.g. --out /etc/stageproxy/ca)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := newCAInitOptions(tc.out, &bytes.Buffer{})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("newCAInitOptions(%q) = %v, want %s", tc.out, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newCAInitOptions(%q) = %v", tc.out, err)
			}
			if opts.out != tc.out {
				t.Errorf("newCAInitOptions(%q).out = %q", tc.out, opts.out)
			}
		})
	}
}

func TestCAInitRun(t *testing.T) {
	t.Run("new", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ca")
		var stderr bytes.Buffer
		opts := &caInitOptions{stderr: &stderr, out: dir, now: time.Now}
		if err := caInitRun(t.Context(), opts); err != nil {
			t.Fatalf("caInitRun(--out %s) = %v", dir, err)
		}
		if _, err := mitm.Load(dir); err != nil {
			t.Errorf("mitm.Load(%q) after ca init = %v", dir, err)
		}
		msg := stderr.String()
		lines := strings.Split(strings.TrimSuffix(msg, "\n"), "\n")
		if len(lines) < 3 || len(lines) > 4 {
			t.Errorf("ca init printed %d lines, want 3-4:\n%s", len(lines), msg)
		}
		for _, want := range []string{
			filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"),
			"serve --mitm-ca " + dir + " --mitm-hosts pypi.org,files.pythonhosted.org,registry.npmjs.org",
			"PIP_CERT=", "NODE_EXTRA_CA_CERTS=", "update-ca-certificates",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("ca init stderr lacks %q:\n%s", want, msg)
			}
		}
	})
	t.Run("existing CA", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := mitm.Init(dir, time.Now()); err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(dir, "ca.key")
		before, _ := os.ReadFile(key)
		var stderr bytes.Buffer
		err := caInitRun(t.Context(), &caInitOptions{stderr: &stderr, out: dir, now: time.Now})
		want := key + " already exists; not overwritten (remove it, or choose another --out)"
		if err == nil || err.Error() != want {
			t.Errorf("caInitRun over an existing CA = %v, want %s", err, want)
		}
		if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
			t.Error("caInitRun changed the existing key")
		}
		if stderr.Len() != 0 {
			t.Errorf("caInitRun printed %q on failure", stderr.String())
		}
	})
}

// TestCAInitCommandLines runs whole command lines through runEnv: exit
// codes, one-line errors, nothing on stdout.
func TestCAInitCommandLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"missing --out", []string{"ca", "init"}, 2, "stageproxy ca init: missing --out DIR"},
		{"empty --out", []string{"ca", "init", "--out", ""}, 2, "stageproxy ca init: missing --out DIR"},
		{"extra argument", []string{"ca", "init", "--out", dir, "x"}, 2, "stageproxy ca init: "},
		{"unknown subcommand", []string{"ca", "renew"}, 2, "stageproxy ca: "},
		{"new", []string{"ca", "init", "--out", dir}, 0, "stageproxy: wrote the CA certificate " + filepath.Join(dir, "ca.crt")},
		{"again", []string{"ca", "init", "--out", dir}, 1,
			"stageproxy ca init: " + filepath.Join(dir, "ca.key") + " already exists; not overwritten (remove it, or choose another --out)\n"},
		{"help", []string{"ca"}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runEnv(t.Context(), tc.args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
			if code != tc.wantCode {
				t.Errorf("stageproxy %s: exit %d, want %d; stderr: %s", strings.Join(tc.args, " "), code, tc.wantCode, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), tc.wantStderr) {
				t.Errorf("stageproxy %s: stderr %q, want it to start with %q", strings.Join(tc.args, " "), stderr.String(), tc.wantStderr)
			}
			if code != 0 && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stageproxy %s: error is not one line: %q", strings.Join(tc.args, " "), stderr.String())
			}
			if tc.name != "help" && stdout.Len() != 0 {
				t.Errorf("stageproxy %s: stdout %q, want nothing", strings.Join(tc.args, " "), stdout.String())
			}
		})
	}
}
