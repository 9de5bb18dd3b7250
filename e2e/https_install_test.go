//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestHTTPSRegistriesWithoutProxy runs pip and npm straight against the
// HTTPS registries, trusting the origin CA, with no proxy. It checks the
// TLS fixtures (CA, leaf, servers) and the clients' certificate settings:
// when it passes and the proxied tests fail, the fault is the proxy's.
func TestHTTPSRegistriesWithoutProxy(t *testing.T) {
	t.Parallel()
	t.Run("pip", func(t *testing.T) {
		t.Parallel()
		python := requirePip(t)
		pki := newOriginPKI(t)
		index := newTLSOrigin(t, pki, func(string) http.Handler { return newSimpleIndex(t, pypiFixture) })
		pipInstallHTTPS(t, python, index.URL("localhost")+"/simple/", "", pki.CAFile)
		for _, w := range pypiFixture {
			if got := index.rec.count(wheelPath(w)); got != 1 {
				t.Errorf("index served %s %d times, want 1", wheelPath(w), got)
			}
		}
	})
	t.Run("npm", func(t *testing.T) {
		t.Parallel()
		npm := requireTool(t, "npm")
		pki := newOriginPKI(t)
		registry := newTLSOrigin(t, pki, func(base string) http.Handler { return newNPMRegistry(t, base, npmFixture) })
		npmInstallHTTPS(t, npm, registry.URL("localhost")+"/", "", pki.CAFile)
		for _, p := range npmFixture {
			if got := registry.rec.count(p.tarballPath()); got != 1 {
				t.Errorf("registry served %s %d times, want 1", p.tarballPath(), got)
			}
		}
	})
}

// TestPipHTTPSInstallTwice installs a package with its dependencies twice
// from an HTTPS index on localhost, through a proxy that intercepts
// localhost, with pip trusting only the proxy's CA (PIP_CERT replaces
// pip's bundle) and the proxy trusting the origin CA (--upstream-ca). The
// second round must get every wheel from the proxy's cache, and every
// request the index got must carry the proxy's Via: the proxy read the
// requests inside the tunnel instead of relaying bytes blind.
func TestPipHTTPSInstallTwice(t *testing.T) {
	t.Parallel()
	python := requirePip(t)
	pki := newOriginPKI(t)
	index := newTLSOrigin(t, pki, func(string) http.Handler { return newSimpleIndex(t, pypiFixture) })
	ca := initProxyCA(t)
	proxy := startMITMProxy(t, ca, pki.CAFile)
	indexURL := index.URL("localhost") + "/simple/"

	pipInstallHTTPS(t, python, indexURL, proxy.URL(), ca.CertFile)
	round1 := index.rec.snapshot()
	for _, w := range pypiFixture {
		if got := round1[wheelPath(w)]; got != 1 {
			t.Errorf("round 1: index served %s %d times, want 1", wheelPath(w), got)
		}
	}

	pipInstallHTTPS(t, python, indexURL, proxy.URL(), ca.CertFile)
	for _, w := range pypiFixture {
		if got := index.rec.count(wheelPath(w)) - round1[wheelPath(w)]; got != 0 {
			t.Errorf("round 2: index served %s %d times, want 0 (a cache hit)", wheelPath(w), got)
		}
	}

	if direct := index.rec.directPaths(); len(direct) > 0 {
		t.Errorf("index got requests without Via: %s, so the proxy did not intercept them: %q", proxyVia, direct)
	}
}

// TestNpmHTTPSInstallTwice is TestPipHTTPSInstallTwice for npm: an HTTPS
// registry on localhost, npm trusting the proxy's CA through
// NODE_EXTRA_CA_CERTS (which adds to Node's roots), a fresh --cache each
// round. The second round must get every tarball from the proxy's cache.
func TestNpmHTTPSInstallTwice(t *testing.T) {
	t.Parallel()
	npm := requireTool(t, "npm")
	pki := newOriginPKI(t)
	registry := newTLSOrigin(t, pki, func(base string) http.Handler { return newNPMRegistry(t, base, npmFixture) })
	ca := initProxyCA(t)
	proxy := startMITMProxy(t, ca, pki.CAFile)
	registryURL := registry.URL("localhost") + "/"

	npmInstallHTTPS(t, npm, registryURL, proxy.URL(), ca.CertFile)
	round1 := registry.rec.snapshot()
	for _, p := range npmFixture {
		if got := round1[p.tarballPath()]; got != 1 {
			t.Errorf("round 1: registry served %s %d times, want 1", p.tarballPath(), got)
		}
	}

	npmInstallHTTPS(t, npm, registryURL, proxy.URL(), ca.CertFile)
	for _, p := range npmFixture {
		if got := registry.rec.count(p.tarballPath()) - round1[p.tarballPath()]; got != 0 {
			t.Errorf("round 2: registry served %s %d times, want 0 (a cache hit)", p.tarballPath(), got)
		}
	}

	if direct := registry.rec.directPaths(); len(direct) > 0 {
		t.Errorf("registry got requests without Via: %s, so the proxy did not intercept them: %q", proxyVia, direct)
	}
}

// TestHTTPSThroughParent is TestPipHTTPSInstallTwice with stageproxy
// chained to an HTTP parent that wants Basic credentials. The parent can
// only tunnel (it does not know the origin CA), so stageproxy must reach the
// index with CONNECT through it and do TLS to the origin inside that
// tunnel: every handshake the index saw must come over a connection the
// parent opened and name localhost, the parent must have relayed no request
// it could read, and round 2 must fetch no wheel.
func TestHTTPSThroughParent(t *testing.T) {
	t.Parallel()
	python := requirePip(t)
	pki := newOriginPKI(t)
	index := newTLSOrigin(t, pki, func(string) http.Handler { return newSimpleIndex(t, pypiFixture) })
	parent := startHTTPParent(t, "u", "p")
	ca := initProxyCA(t)
	proxy := startMITMProxy(t, ca, pki.CAFile, "parentProxy = "+parent.Addr, `parentAuthCredentials = "u:p"`)
	indexURL := index.URL("localhost") + "/simple/"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", parent)
		}
	})

	pipInstallHTTPS(t, python, indexURL, proxy.URL(), ca.CertFile)
	if n := parent.relayCount(); n == 0 {
		t.Errorf("round 1: parent relayed nothing, want CONNECTs to localhost:%s", index.Port)
	}
	hellos := index.helloSnapshot()
	if len(hellos) == 0 {
		t.Errorf("round 1: index saw no TLS handshake")
	}
	for _, h := range hellos {
		if !parent.opened(h.remoteAddr) {
			t.Errorf("round 1: index got a TLS handshake from %s, not over a connection the parent opened", h.remoteAddr)
		}
		if h.serverName != "localhost" {
			t.Errorf("round 1: index got a TLS handshake for SNI %q, want %q", h.serverName, "localhost")
		}
	}
	round1 := index.rec.snapshot()
	for _, w := range pypiFixture {
		if got := round1[wheelPath(w)]; got != 1 {
			t.Errorf("round 1: index served %s %d times, want 1", wheelPath(w), got)
		}
	}

	pipInstallHTTPS(t, python, indexURL, proxy.URL(), ca.CertFile)
	for _, w := range pypiFixture {
		if got := index.rec.count(wheelPath(w)) - round1[wheelPath(w)]; got != 0 {
			t.Errorf("round 2: index served %s %d times, want 0 (a cache hit)", wheelPath(w), got)
		}
	}
	for _, h := range index.helloSnapshot()[len(hellos):] {
		if !parent.opened(h.remoteAddr) {
			t.Errorf("round 2: index got a TLS handshake from %s, not over a connection the parent opened", h.remoteAddr)
		}
	}

	// A parent that saw request lines got them in absolute form or in
	// plaintext inside a tunnel: either way not a CONNECT carrying TLS.
	if paths := parent.pathSnapshot(); len(paths) > 0 {
		t.Errorf("parent read requests %v, want only CONNECT tunnels carrying TLS", paths)
	}
	if direct := index.rec.directPaths(); len(direct) > 0 {
		t.Errorf("index got requests without Via: %s: %q", proxyVia, direct)
	}
	for _, got := range parent.proxyAuthSeen() {
		if want := basicAuth("u", "p"); got != want {
			t.Errorf("parent got Proxy-Authorization %q, want %q", got, want)
		}
	}
}

// pipInstallHTTPS installs stagealpha (and so its dependencies) from
// indexURL into a fresh --target, through proxyURL unless it is empty,
// with certFile as pip's only trusted CA (PIP_CERT replaces certifi's
// bundle), and checks that every fixture package landed there.
func pipInstallHTTPS(t *testing.T, python, indexURL, proxyURL, certFile string) {
	t.Helper()
	target := t.TempDir()
	env := toolEnv(t, proxyURL,
		"PIP_CERT="+certFile,
		"PIP_CONFIG_FILE=/dev/null",
		"PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PIP_NO_INPUT=1",
		"PYTHONNOUSERSITE=1",
	)
	out := runTool(t, t.TempDir(), env, python, "-m", "pip", "install",
		"--no-cache-dir", "--index-url", indexURL, "--target", target, "stagealpha")
	for _, w := range pypiFixture {
		if _, err := os.Stat(filepath.Join(target, w.Project, "__init__.py")); err != nil {
			t.Errorf("pip install stagealpha: %v\npip output:\n%s", err, out)
		}
	}
}

// npmInstallHTTPS runs `npm install` in a fresh project that depends on
// stagefoo, with a fresh --cache and empty npmrc files, through proxyURL
// unless it is empty, with caFile added to Node's roots
// (NODE_EXTRA_CA_CERTS), and checks that every fixture package landed in
// node_modules.
func npmInstallHTTPS(t *testing.T, npm, registryURL, proxyURL, caFile string) {
	t.Helper()
	project := t.TempDir()
	pkgJSON := `{"name": "stageproxy-e2e-app", "version": "1.0.0", "private": true, "dependencies": {"stagefoo": "^1.0.0"}}` + "\n"
	if err := os.WriteFile(filepath.Join(project, "package.json"), []byte(pkgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	// npm refuses one file as both the user and the global config.
	userrc := filepath.Join(t.TempDir(), "npmrc")
	globalrc := filepath.Join(t.TempDir(), "npmrc")
	for _, rc := range []string{userrc, globalrc} {
		if err := os.WriteFile(rc, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	extra := []string{
		"NODE_EXTRA_CA_CERTS=" + caFile,
		"npm_config_userconfig=" + userrc,
		"npm_config_globalconfig=" + globalrc,
		"npm_config_update_notifier=false",
		"npm_config_noproxy=",
	}
	if proxyURL != "" {
		extra = append(extra, "npm_config_proxy="+proxyURL, "npm_config_https_proxy="+proxyURL)
	}
	out := runTool(t, project, toolEnv(t, proxyURL, extra...), npm, "install",
		"--registry", registryURL, "--cache", t.TempDir(),
		"--no-audit", "--no-fund", "--loglevel", "http")
	for _, p := range npmFixture {
		if _, err := os.Stat(filepath.Join(project, "node_modules", p.Name, "index.js")); err != nil {
			t.Errorf("npm install: %v\nnpm output:\n%s", err, out)
		}
	}
}
