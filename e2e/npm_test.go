//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestNpmInstallTwice installs a package with its dependency through the
// proxy twice, each time into a fresh project with an empty npm cache, from
// a plain-HTTP registry on loopback. The second round must get every
// tarball from the proxy's cache.
func TestNpmInstallTwice(t *testing.T) {
	t.Parallel()
	npm := requireTool(t, "npm")
	registry, rec := newOrigin(t, func(base string) http.Handler { return newNPMRegistry(t, base, npmFixture) })
	proxy := startProxy(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry requests:\n%s", rec.String())
		}
	})

	npmInstall(t, npm, registry.URL+"/", proxy.URL())
	round1 := rec.wantServedOnce(t, "registry", tarballPaths())

	npmInstall(t, npm, registry.URL+"/", proxy.URL())
	rec.wantNotServedSince(t, "registry", tarballPaths(), round1)

	if direct := rec.directPaths(); len(direct) > 0 {
		t.Errorf("registry got requests without Via: %s, so they bypassed the proxy: %q", proxyVia, direct)
	}
}

// npmInstall runs `npm install` in a fresh project that depends on
// stagefoo, with a fresh --cache, through proxyURL unless it is empty, and
// checks that every fixture package landed in node_modules.
func npmInstall(t *testing.T, npm, registryURL, proxyURL string, extraEnv ...string) {
	t.Helper()
	project := t.TempDir()
	pkgJSON := `{"name": "stageproxy-e2e-app", "version": "1.0.0", "private": true, "dependencies": {"stagefoo": "^1.0.0"}}` + "\n"
	if err := os.WriteFile(filepath.Join(project, "package.json"), []byte(pkgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	// Empty user and global configs: no .npmrc of the machine applies.
	// npm refuses one file as both.
	userrc := filepath.Join(t.TempDir(), "npmrc")
	globalrc := filepath.Join(t.TempDir(), "npmrc")
	for _, rc := range []string{userrc, globalrc} {
		if err := os.WriteFile(rc, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	extra := []string{
		"npm_config_userconfig=" + userrc,
		"npm_config_globalconfig=" + globalrc,
		"npm_config_update_notifier=false",
		"npm_config_noproxy=",
	}
	extra = append(extra, extraEnv...)
	if proxyURL != "" {
		extra = append(extra, "npm_config_proxy="+proxyURL, "npm_config_https_proxy="+proxyURL)
	}
	env := toolEnv(t, proxyURL, extra...)
	out := runTool(t, project, env, npm, "install",
		"--registry", registryURL, "--cache", t.TempDir(),
		"--no-audit", "--no-fund", "--loglevel", "http")
	for _, p := range npmFixture {
		index := filepath.Join(project, "node_modules", p.Name, "index.js")
		if _, err := os.Stat(index); err != nil {
			t.Errorf("npm install: %v\nnpm output:\n%s", err, out)
		}
	}
}
