//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// parentKinds are the parent proxies stageproxy chains through (SPEC: HTTP
// with Basic credentials, SOCKS5 with username/password, SOCKS4a with a
// user id), each with the config-file lines that select it.
var parentKinds = []struct {
	name string
	// start runs the parent and returns the config-file lines for it.
	start func(t *testing.T) (*testParent, []string)
	// proxyAuth is the Proxy-Authorization the parent must get on every
	// request ("" for SOCKS, which has none).
	proxyAuth string
}{
	{
		name: "http",
		start: func(t *testing.T) (*testParent, []string) {
			p := startHTTPParent(t, "u", "p")
			return p, []string{"parentProxy = " + p.Addr, `parentAuthCredentials = "u:p"`}
		},
		proxyAuth: basicAuth("u", "p"),
	},
	{
		name: "socks5",
		start: func(t *testing.T) (*testParent, []string) {
			p := startSOCKS5Parent(t, "u", "p")
			return p, []string{"socksParentProxy = " + p.Addr, "socksProxyType = socks5", `socksAuthCredentials = "u:p"`}
		},
	},
	{
		name: "socks4a",
		start: func(t *testing.T) (*testParent, []string) {
			p := startSOCKS4aParent(t, "builder")
			return p, []string{"socksParentProxy = " + p.Addr, "socksProxyType = socks4a", "socksUserName = builder"}
		},
	},
}

// registryTool is pip or npm with its loopback registry, for one test.
type registryTool struct {
	rec    *recorder  // requests per path, and Via
	origin *originLog // where each request came from, Proxy-Authorization
	// files are the URL paths of the package files one install fetches.
	files []string
	// install runs one install through proxyURL and checks its result.
	install func(t *testing.T, proxyURL string)
}

func newPipTool(t *testing.T) *registryTool {
	t.Helper()
	python := requirePip(t)
	tool := &registryTool{origin: &originLog{}}
	index, rec := newOrigin(t, func(string) http.Handler { return tool.origin.wrap(newSimpleIndex(t, pypiFixture)) })
	tool.rec = rec
	for _, w := range pypiFixture {
		tool.files = append(tool.files, wheelPath(w))
	}
	tool.install = func(t *testing.T, proxyURL string) {
		t.Helper()
		pipInstall(t, python, index.URL+"/simple/", proxyURL)
	}
	return tool
}

func newNPMTool(t *testing.T) *registryTool {
	t.Helper()
	npm := requireTool(t, "npm")
	tool := &registryTool{origin: &originLog{}}
	registry, rec := newOrigin(t, func(base string) http.Handler { return tool.origin.wrap(newNPMRegistry(t, base, npmFixture)) })
	tool.rec = rec
	for _, p := range npmFixture {
		tool.files = append(tool.files, p.tarballPath())
	}
	tool.install = func(t *testing.T, proxyURL string) {
		t.Helper()
		npmInstall(t, npm, registry.URL+"/", proxyURL)
	}
	return tool
}

// TestParentProxyInstall installs with pip and with npm twice through
// stageproxy chained to each kind of parent proxy, configured with
// Polipo's keys in the config file. Round 1 must reach the registry
// through the parent only, fetching each package file once; round 2 must
// get every package file from stageproxy's cache, so that neither the
// registry nor the parent sees it again. The parent's credentials must
// never reach the registry.
func TestParentProxyInstall(t *testing.T) {
	t.Parallel()
	tools := []struct {
		name string
		new  func(t *testing.T) *registryTool
	}{
		{"pip", newPipTool},
		{"npm", newNPMTool},
	}
	for _, kind := range parentKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			for _, tl := range tools {
				t.Run(tl.name, func(t *testing.T) {
					t.Parallel()
					tool := tl.new(t)
					parent, lines := kind.start(t)
					proxy := startProxy(t, "--config", writeConfig(t, lines...))
					t.Cleanup(func() {
						if t.Failed() {
							t.Logf("registry requests:\n%s\n%s", tool.rec.String(), parent)
						}
					})

					tool.install(t, proxy.URL())
					if n := parent.relayCount(); n == 0 {
						t.Errorf("round 1: %s parent relayed nothing, want at least one request or connection", kind.name)
					}
					round1 := parent.pathSnapshot()
					for _, f := range tool.files {
						if got := tool.rec.count(f); got != 1 {
							t.Errorf("round 1: registry served %s %d times, want 1", f, got)
						}
						if got := round1[f]; got != 1 {
							t.Errorf("round 1: %s parent relayed %s %d times, want 1", kind.name, f, got)
						}
					}
					if bad := tool.origin.notFrom(parent, 0); len(bad) > 0 {
						t.Errorf("round 1: registry got requests that bypassed the %s parent: %q", kind.name, bad)
					}
					round2From := tool.origin.len()

					tool.install(t, proxy.URL())
					for _, f := range tool.files {
						if got := tool.rec.count(f) - 1; got != 0 {
							t.Errorf("round 2: registry served %s %d times, want 0 (a cache hit)", f, got)
						}
						if got := parent.pathCount(f) - round1[f]; got != 0 {
							t.Errorf("round 2: %s parent relayed %s %d times, want 0 (a cache hit)", kind.name, f, got)
						}
					}
					if bad := tool.origin.notFrom(parent, round2From); len(bad) > 0 {
						t.Errorf("round 2: registry got requests that bypassed the %s parent: %q", kind.name, bad)
					}

					if leaked := tool.origin.withProxyAuth(); len(leaked) > 0 {
						t.Errorf("registry got Proxy-Authorization: %q", leaked)
					}
					if direct := tool.rec.directPaths(); len(direct) > 0 {
						t.Errorf("registry got requests without Via: %s: %q", proxyVia, direct)
					}
					if kind.proxyAuth != "" {
						seen := parent.proxyAuthSeen()
						if len(seen) == 0 || slices.ContainsFunc(seen, func(s string) bool { return s != kind.proxyAuth }) {
							t.Errorf("%s parent got Proxy-Authorization %q, want %q on every request", kind.name, seen, kind.proxyAuth)
						}
					}
				})
			}
		})
	}
}

// TestParentProxyLiveSwitch starts stageproxy with no parent, installs with
// pip (direct), then sets an HTTP parent with `stageproxy upstream_proxy
// set` on the running proxy's config file. Once the proxy logs the change,
// a package not fetched before must come through the parent, while the
// wheels of the first install stay cache hits: the switch keeps the cache.
func TestParentProxyLiveSwitch(t *testing.T) {
	t.Parallel()
	python := requirePip(t)
	delta := wheel{Project: "stagedelta", Version: "1.0"}
	origin := &originLog{}
	index, rec := newOrigin(t, func(string) http.Handler {
		return origin.wrap(newSimpleIndex(t, append(slices.Clone(pypiFixture), delta)))
	})
	parent := startHTTPParent(t, "u", "p")
	conf := writeConfig(t, "# stageproxy e2e: no parent until upstream_proxy set")
	proxy := startProxy(t, "--config", conf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("index requests:\n%s\n%s", rec.String(), parent)
		}
	})

	pipInstall(t, python, index.URL+"/simple/", proxy.URL())
	if n := parent.relayCount(); n != 0 {
		t.Errorf("before the switch: parent relayed %d requests, want 0 (direct)", n)
	}
	for _, w := range pypiFixture {
		if got := rec.count(wheelPath(w)); got != 1 {
			t.Errorf("before the switch: index served %s %d times, want 1", wheelPath(w), got)
		}
	}
	beforeSwitch := origin.len()

	logFrom := len(proxy.Log())
	setUpstreamProxy(t, conf, "u", "p", parent.Addr)
	waitForLogLine(t, proxy, logFrom, 3*time.Second, "upstream proxy changed", parent.Addr)

	pipInstallWheels(t, python, index.URL+"/simple/", proxy.URL(), append(slices.Clone(pypiFixture), delta))
	if got := parent.pathCount(wheelPath(delta)); got != 1 {
		t.Errorf("after the switch: parent relayed %s %d times, want 1", wheelPath(delta), got)
	}
	if got := rec.count(wheelPath(delta)); got != 1 {
		t.Errorf("after the switch: index served %s %d times, want 1", wheelPath(delta), got)
	}
	if bad := origin.notFrom(parent, beforeSwitch); len(bad) > 0 {
		t.Errorf("after the switch: index got requests that bypassed the parent: %q", bad)
	}
	for _, w := range pypiFixture {
		if got := rec.count(wheelPath(w)); got != 1 {
			t.Errorf("after the switch: index served %s %d times in all, want 1 (a cache hit)", wheelPath(w), got)
		}
		if got := parent.pathCount(wheelPath(w)); got != 0 {
			t.Errorf("after the switch: parent relayed %s %d times, want 0 (a cache hit)", wheelPath(w), got)
		}
	}
	if leaked := origin.withProxyAuth(); len(leaked) > 0 {
		t.Errorf("index got Proxy-Authorization: %q", leaked)
	}
	if seen := parent.proxyAuthSeen(); slices.ContainsFunc(seen, func(s string) bool { return s != basicAuth("u", "p") }) {
		t.Errorf("parent got Proxy-Authorization %q, want %q on every request", seen, basicAuth("u", "p"))
	}
}

// TestParentProxyBadCredentials configures an HTTP parent with a wrong
// password: a request through stageproxy must get a 502 naming the parent
// (the client cannot answer a 407 meant for the proxy), the origin must see
// nothing, and the password must show in neither the answer nor the log.
func TestParentProxyBadCredentials(t *testing.T) {
	t.Parallel()
	const badPassword = "wr0ng-e2e-secret"
	origin, rec := newOrigin(t, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=600")
			io.WriteString(w, "stageproxy e2e origin\n")
		})
	})
	parent := startHTTPParent(t, "u", "p")
	proxy := startProxy(t, "--config", writeConfig(t, "parentProxy = "+parent.Addr, `parentAuthCredentials = "u:`+badPassword+`"`))
	proxyURL, err := url.Parse(proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	target := origin.URL + "/hello.txt"
	resp := get(t, client, target)
	want := "parent proxy " + parent.Addr + " rejected the credentials (407)"
	if resp.status != http.StatusBadGateway || strings.TrimSuffix(resp.body, "\n") != want {
		t.Errorf("GET %s through the proxy = %d %q, want %d %q", target, resp.status, resp.body, http.StatusBadGateway, want)
	}
	if strings.Contains(resp.body, badPassword) || strings.Contains(proxy.Log(), badPassword) {
		t.Errorf("the password shows in the answer or the proxy's log:\nanswer: %q\nlog:\n%s", resp.body, proxy.Log())
	}
	if n := parent.rejectedCount(); n == 0 {
		t.Errorf("parent rejected %d requests, want at least 1\n%s", n, parent)
	}
	if seen, want := parent.proxyAuthSeen(), basicAuth("u", badPassword); !slices.Contains(seen, want) {
		t.Errorf("parent got Proxy-Authorization %q, want %q (the configured, wrong, credentials)", seen, want)
	}
	if n := parent.relayCount(); n != 0 {
		t.Errorf("parent relayed %d requests, want 0", n)
	}
	if got := rec.count("/hello.txt"); got != 0 {
		t.Errorf("origin served /hello.txt %d times, want 0\n%s", got, rec.String())
	}
}

// writeConfig writes lines as a config file (mode 0600: it may hold a
// credential) and returns its path. startProxy(t, "--config", path) then
// serves with it: the later --config wins over startProxy's empty file.
func writeConfig(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stageproxy.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// setUpstreamProxy makes addr the HTTP parent in the config file conf with
// the CLI, `stageproxy upstream_proxy set --config CONF -u USER
// --password-stdin ADDR`, the password on standard input, as an operator
// would; a running proxy on conf applies it live.
func setUpstreamProxy(t *testing.T, conf, user, pass, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args := []string{"upstream_proxy", "set", "--config", conf, "-u", user, "--password-stdin", addr}
	cmd := exec.CommandContext(ctx, proxyBin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(pass + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stageproxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if bytes.Contains(out, []byte(pass+"@")) || bytes.Contains(out, []byte(":"+pass)) {
		t.Errorf("stageproxy %s printed the password: %s", strings.Join(args, " "), out)
	}
}

// waitForLogLine waits until a line of the proxy's log written after its
// first from bytes contains every one of substrs, or fails the test after
// timeout. It polls the log on a ticker: the log is in memory, so this
// costs nothing, and there is no sleep to tune.
func waitForLogLine(t *testing.T, p *proxyProcess, from int, timeout time.Duration, substrs ...string) {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		log := p.Log()
		for line := range strings.Lines(log[min(from, len(log)):]) {
			if !slices.ContainsFunc(substrs, func(s string) bool { return !strings.Contains(line, s) }) {
				t.Logf("proxy logged %q %v after the change", strings.TrimSpace(line), time.Since(start).Round(time.Millisecond))
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("proxy did not log a line with %q within %v (SPEC: a change applies within 2 s); log:\n%s", substrs, timeout, log)
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}

// pipInstallWheels installs the projects of wheels from indexURL into a
// fresh --target, through proxyURL, and checks that each landed. It is
// pipInstall for a chosen set of projects.
func pipInstallWheels(t *testing.T, python, indexURL, proxyURL string, wheels []wheel) {
	t.Helper()
	target := t.TempDir()
	env := toolEnv(t, proxyURL,
		"PIP_CONFIG_FILE=/dev/null",
		"PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PIP_NO_INPUT=1",
		"PYTHONNOUSERSITE=1",
	)
	args := []string{"-m", "pip", "install", "--no-cache-dir", "--index-url", indexURL, "--target", target}
	for _, w := range wheels {
		args = append(args, w.Project)
	}
	out := runTool(t, t.TempDir(), env, python, args...)
	for _, w := range wheels {
		if _, err := os.Stat(filepath.Join(target, w.Project, "__init__.py")); err != nil {
			t.Errorf("pip install: %v\npip output:\n%s", err, out)
		}
	}
}
