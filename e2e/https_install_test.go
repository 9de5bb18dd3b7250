//go:build e2e

package e2e

import (
	"net/http"
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
		pipInstall(t, python, index.URL("localhost")+"/simple/", "", "PIP_CERT="+pki.CAFile)
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
		npmInstall(t, npm, registry.URL("localhost")+"/", "", "NODE_EXTRA_CA_CERTS="+pki.CAFile)
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

	pipInstall(t, python, indexURL, proxy.URL(), "PIP_CERT="+ca.CertFile)
	round1 := index.rec.wantServedOnce(t, "index", wheelPaths())

	pipInstall(t, python, indexURL, proxy.URL(), "PIP_CERT="+ca.CertFile)
	index.rec.wantNotServedSince(t, "index", wheelPaths(), round1)

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

	npmInstall(t, npm, registryURL, proxy.URL(), "NODE_EXTRA_CA_CERTS="+ca.CertFile)
	round1 := registry.rec.wantServedOnce(t, "registry", tarballPaths())

	npmInstall(t, npm, registryURL, proxy.URL(), "NODE_EXTRA_CA_CERTS="+ca.CertFile)
	registry.rec.wantNotServedSince(t, "registry", tarballPaths(), round1)

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

	pipInstall(t, python, indexURL, proxy.URL(), "PIP_CERT="+ca.CertFile)
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
	round1 := index.rec.wantServedOnce(t, "index", wheelPaths())

	pipInstall(t, python, indexURL, proxy.URL(), "PIP_CERT="+ca.CertFile)
	index.rec.wantNotServedSince(t, "index", wheelPaths(), round1)
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
