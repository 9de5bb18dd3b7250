package main

import (
	"bytes"
	"context"
	"github.com/stageproxy/stageproxy/proxy"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewServeOptions(t *testing.T) {
	tests := []struct {
		name    string
		flags   serveFlags
		check   func(*serveOptions) bool
		wantErr string
	}{
		{"none", serveFlags{},
			func(o *serveOptions) bool { return !o.listenSet && o.cacheSize == 0 && o.maxObjectSize == 0 }, ""},
		{"listen", serveFlags{listen: "127.0.0.1:0"},
			func(o *serveOptions) bool { return o.listenSet && o.listenHost == "127.0.0.1" && o.listenPort == 0 }, ""},
		{"listen ipv6", serveFlags{listen: "[::1]:3128"},
			func(o *serveOptions) bool { return o.listenHost == "::1" && o.listenPort == 3128 }, ""},
		{"listen all", serveFlags{listen: ":8123"},
			func(o *serveOptions) bool { return o.listenHost == "" && o.listenPort == 8123 }, ""},
		{"sizes", serveFlags{cacheSize: "200MB", maxObjectSize: "64MiB"},
			func(o *serveOptions) bool { return o.cacheSize == 200e6 && o.maxObjectSize == 64<<20 }, ""},
		{"log file", serveFlags{logFile: "", logFileSet: true},
			func(o *serveOptions) bool { return o.logFileSet && o.logFile == "" }, ""},
		{"bad listen port", serveFlags{listen: "127.0.0.1:http"}, nil, `--listen: invalid address "127.0.0.1:http"`},
		{"listen port too big", serveFlags{listen: "127.0.0.1:65536"}, nil, `--listen: invalid address`},
		{"bad cache size", serveFlags{cacheSize: "12XB"}, nil, `--cache-size: invalid size "12XB"`},
		{"ambiguous size", serveFlags{maxObjectSize: "1m"}, nil, `--max-object-size: ambiguous size "1m"`},
		{"zero cache size", serveFlags{cacheSize: "0MB"}, nil, `--cache-size: invalid size "0MB" (want more than 0 bytes)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := newServeOptions(tt.flags, "/c.conf", true, io.Discard, func(string) string { return "" })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newServeOptions(%+v) = %v, want error containing %q", tt.flags, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newServeOptions(%+v) = %v", tt.flags, err)
			}
			if !tt.check(o) {
				t.Errorf("newServeOptions(%+v) = %+v, check failed", tt.flags, o)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	if got, want := memoryLimit(100e6), int64(100e6+12.5e6+8<<20); got != want {
		t.Errorf("memoryLimit(100e6) = %d, want %d", got, want)
	}
	if got := memoryLimit(math.MaxInt64 / 2); got != math.MaxInt64 {
		t.Errorf("memoryLimit(huge) = %d, want MaxInt64", got)
	}
}

// lineCollector collects log output and passes each line to lines, dropping lines
// nobody waits for.
type lineCollector struct {
	mu    sync.Mutex
	buf   bytes.Buffer // protects: mu
	lines chan string
}

func (s *lineCollector) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf.Write(p)
	s.mu.Unlock()
	for l := range strings.Lines(string(p)) {
		select {
		case s.lines <- strings.TrimSuffix(l, "\n"):
		default:
		}
	}
	return len(p), nil
}

func (s *lineCollector) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// startServe runs serveRun in the background with --listen 127.0.0.1:0 and
// returns the address from its first log line, a function that stops it and
// returns serveRun's error, and the log.
func startServe(t *testing.T, configPath string, env map[string]string) (addr string, stop func() error, log *lineCollector, memLimit *int64) {
	t.Helper()
	log = &lineCollector{lines: make(chan string, 64)}
	memLimit = new(int64)
	opts, err := newServeOptions(serveFlags{listen: "127.0.0.1:0"}, configPath, false, log,
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	opts.setMemoryLimit = func(n int64) int64 { *memLimit = n; return 0 }
	opts.setLogDefault = func(*slog.Logger) {} // process-wide; the binary's tests cover it

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveRun(ctx, opts) }()

	timeout := time.After(10 * time.Second)
	select {
	case first := <-log.lines:
		i := strings.Index(first, " addr=")
		if !strings.Contains(first, `level=INFO msg="listening on 127.0.0.1:`) || i < 0 {
			cancel()
			t.Fatalf("first log line = %q, want listening on 127.0.0.1:PORT", first)
		}
		addr = first[i+len(" addr="):]
		if !strings.Contains(first, `"listening on `+addr+`"`) {
			t.Fatalf("first log line = %q: message and addr differ", first)
		}
	case err := <-done:
		cancel()
		t.Fatalf("serveRun returned %v before listening; log %q", err, log.String())
	case <-timeout:
		cancel()
		t.Fatalf("no log line after 10 s")
	}

	stopped := false
	stop = func() error {
		t.Helper()
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(40 * time.Second):
			t.Fatalf("serveRun did not return within 40 s of cancellation")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return addr, stop, log, memLimit
}

func TestServeRun(t *testing.T) {
	conf := writeFile(t, "polipo.conf", "proxyPort = 1\ndiskCacheRoot = \"\"\ncacheSize = 10MB\n")
	addr, stop, log, memLimit := startServe(t, conf, nil)

	// Any HTTP answer will do: this checks the wiring, not the handler.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()

	if err := stop(); err != nil {
		t.Errorf("serveRun() = %v after cancel, want nil", err)
	}
	out := log.String()
	for _, want := range []string{
		"level=WARN msg=\"" + conf + ":2: polipo variable diskCacheRoot is not implemented by stageproxy; ignored\"",
		"msg=\"shutting down; a second signal stops at once\"",
		"msg=stopped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log = %q, want it to contain %q", out, want)
		}
	}
	if want := memoryLimit(10e6); *memLimit != want {
		t.Errorf("memory limit = %d, want %d", *memLimit, want)
	}
}

func TestServeRunDefaultsAndGOMEMLIMIT(t *testing.T) {
	missingDefault := filepath.Join(t.TempDir(), "stageproxy.conf")
	_, stop, _, memLimit := startServe(t, missingDefault, map[string]string{"GOMEMLIMIT": "1GiB"})
	if err := stop(); err != nil {
		t.Errorf("serveRun() = %v after cancel, want nil", err)
	}
	if *memLimit != 0 {
		t.Errorf("memory limit set to %d with GOMEMLIMIT in the environment, want untouched", *memLimit)
	}
}

func TestLogSinkFlushesAllButAccessLines(t *testing.T) {
	var out strings.Builder
	sink := newLogSink(&out)
	logger := slog.New(flushingHandler{slog.NewTextHandler(sink, nil), sink})
	logger.Info(proxy.AccessLogMessage, "url", "http://a/")
	if out.Len() != 0 {
		t.Errorf("access line written at once: %q; want it buffered", out.String())
	}
	logger.Warn("upstream failed")
	if got := out.String(); !strings.Contains(got, "url=http://a/") || !strings.Contains(got, "upstream failed") {
		t.Errorf("after a warning the log holds %q; want both lines", got)
	}
}

// TestMaxObjectSizeCapIsLogged: a maxObjectSize above half the cache is
// capped, and the log says so instead of storing less than asked silently.
func TestMaxObjectSizeCapIsLogged(t *testing.T) {
	conf := writeFile(t, "stageproxy.conf", "cacheSize = 2MB\nmaxObjectSize = 10MB\n")
	_, _, log, _ := startServe(t, conf, nil)
	if line := waitLog(t, log, "capped at half the cache"); !strings.Contains(line, "maxObjectSize=10000000") {
		t.Errorf("cap warning does not name the configured maxObjectSize: %q", line)
	}
}

// TestInterceptionIsLogged: the start says which hosts are intercepted,
// and with which CA.
func TestInterceptionIsLogged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	var stdout, stderr bytes.Buffer
	if code := runEnv(t.Context(), []string{"ca", "init", "--out", dir}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, stderr.String())
	}
	conf := writeFile(t, "stageproxy.conf", "mitmCA = "+dir+"\nmitmHosts = pypi.org, files.pythonhosted.org\n")
	_, _, log, _ := startServe(t, conf, nil)
	if line := waitLog(t, log, "intercepting HTTPS"); !strings.Contains(line, "pypi.org, files.pythonhosted.org") || !strings.Contains(line, dir) {
		t.Errorf("interception log line %q, want the hosts and %s", line, dir)
	}
}
