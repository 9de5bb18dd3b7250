//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	// proxyBin is the stageproxy binary that TestMain builds once.
	proxyBin string
	// proxyBuildErr is why it could not be built; startProxy reports it so
	// that the tests which need no proxy still run.
	proxyBuildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stageproxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)

	proxyBin = filepath.Join(dir, "stageproxy")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", proxyBin, "./cmd/stageproxy")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		proxyBuildErr = fmt.Errorf("go build ./cmd/stageproxy: %w\n%s", err, out)
	}
	m.Run()
}

// proxyProcess is a running `stageproxy serve`.
type proxyProcess struct {
	// Addr is the HOST:PORT it listens on.
	Addr string
	log  *lineWriter
}

// URL is the proxy's address as an http:// URL, the form HTTP_PROXY takes.
func (p *proxyProcess) URL() string { return "http://" + p.Addr }

// Log returns everything the proxy has written to its standard error.
func (p *proxyProcess) Log() string { return p.log.String() }

// startProxy runs the binary on 127.0.0.1:0 with an empty config file and
// returns once it has logged the address it listens on. The port comes from
// the log line, so there is no port race and no polling. t.Cleanup stops it
// with SIGTERM (SIGKILL after a bound) and prints its log if the test failed.
func startProxy(t *testing.T, args ...string) *proxyProcess {
	t.Helper()
	if proxyBuildErr != nil {
		t.Fatal(proxyBuildErr)
	}
	conf := filepath.Join(t.TempDir(), "none.conf")
	if err := os.WriteFile(conf, []byte("# stageproxy e2e: defaults only\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	lw := newLineWriter("listening on ")
	argv := append([]string{"serve", "--listen", "127.0.0.1:0", "--config", conf}, args...)
	cmd := exec.CommandContext(t.Context(), proxyBin, argv...)
	// An explicit environment: no HTTP_PROXY of ours may make the proxy
	// route through anything, and no STAGEPROXY_CONFIG may replace --config.
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	cmd.Stdout = lw
	cmd.Stderr = lw
	// t.Context is cancelled just before the cleanups run: stop gracefully,
	// and let exec kill the process if it has not exited within WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", proxyBin, err)
	}

	var (
		waitErr     error
		exitedEarly bool
		done        = make(chan struct{})
	)
	go func() {
		waitErr = cmd.Wait()
		exitedEarly = t.Context().Err() == nil
		close(done)
	}()
	p := &proxyProcess{log: lw}
	t.Cleanup(func() {
		<-done // t.Context is already cancelled: SIGTERM was sent
		if exitedEarly {
			t.Errorf("stageproxy exited during the test: %v", waitErr)
		}
		if t.Failed() {
			t.Logf("stageproxy %s log:\n%s", strings.Join(argv, " "), p.Log())
		}
	})

	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case line := <-lw.found:
		addr, err := parseListening(line)
		if err != nil {
			t.Fatalf("stageproxy log line %q: %v\nlog:\n%s", line, err, p.Log())
		}
		p.Addr = addr
	case <-done:
		t.Fatalf("stageproxy exited before it listened: %v\nlog:\n%s", waitErr, p.Log())
	case <-timeout.C:
		t.Fatalf("stageproxy did not log %q within 30s; log:\n%s", "listening on ADDR", p.Log())
	}
	return p
}

// parseListening extracts ADDR from a log line containing "listening on
// ADDR", as slog's text handler writes it: msg="listening on 127.0.0.1:40123".
func parseListening(line string) (string, error) {
	_, rest, ok := strings.Cut(line, "listening on ")
	if !ok {
		return "", errors.New(`no "listening on "`)
	}
	if i := strings.IndexAny(rest, "\" \t\r\n"); i >= 0 {
		rest = rest[:i]
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return "", err
	}
	if port == "0" || port == "" {
		return "", fmt.Errorf("port %q is not a listening port", port)
	}
	return net.JoinHostPort(host, port), nil
}

// lineWriter buffers a process's output for failure messages and sends the
// first complete line containing marker on found.
type lineWriter struct {
	marker string
	found  chan string

	mu      sync.Mutex // protects buf, scanned and sent
	buf     bytes.Buffer
	scanned int  // bytes of buf already searched for complete lines
	sent    bool // whether found has had its line
}

func newLineWriter(marker string) *lineWriter {
	return &lineWriter{marker: marker, found: make(chan string, 1)}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for !w.sent {
		rest := w.buf.Bytes()[w.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := string(rest[:i])
		w.scanned += i + 1
		if strings.Contains(line, w.marker) {
			w.found <- line
			w.sent = true
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// requireTool skips the test when the named program is not on PATH, and
// fails it in CI (CI=true), where pip and npm are promised: a test that
// silently skips there could never fail.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missingTool(t, "%s not found: %v", name, err)
	}
	return path
}

// missingTool skips, or fails in CI, with the reason given.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// toolEnv returns the environment for a package manager, built from
// scratch so that nothing from the machine (PIP_FIND_LINKS, PIP_CERT,
// REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, npm_config_*, a proxy) leaks in.
// With proxyURL set, every proxy variable in both cases points at it and
// NO_PROXY is empty: nothing, 127.0.0.1 included, bypasses the proxy.
func toolEnv(t *testing.T, proxyURL string, extra ...string) []string {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"LANG=C.UTF-8",
	}
	if proxyURL != "" {
		for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
			env = append(env, k+"="+proxyURL)
		}
		env = append(env, "NO_PROXY=", "no_proxy=")
	}
	return append(env, extra...)
}

// runTool runs cmd with a bound and returns its combined output; it fails
// the test, printing that output, if the command fails.
func runTool(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
