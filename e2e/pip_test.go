//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPipInstallTwice installs a package with its dependencies through the
// proxy twice, each time with pip's own cache off and a fresh --target, from
// a plain-HTTP index on loopback (a proxy that does not intercept TLS could
// not see inside a CONNECT tunnel). The second round must get every wheel
// from the proxy's cache; the index pages may be revalidated, since pip asks
// for them with Cache-Control: max-age=0.
func TestPipInstallTwice(t *testing.T) {
	t.Parallel()
	python := requirePip(t)
	index, rec := newOrigin(t, func(string) http.Handler { return newSimpleIndex(t, pypiFixture) })
	proxy := startProxy(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("index requests:\n%s", rec.String())
		}
	})

	pipInstall(t, python, index.URL+"/simple/", proxy.URL())
	round1 := rec.wantServedOnce(t, "index", wheelPaths())

	pipInstall(t, python, index.URL+"/simple/", proxy.URL())
	rec.wantNotServedSince(t, "index", wheelPaths(), round1)

	if direct := rec.directPaths(); len(direct) > 0 {
		t.Errorf("index got requests without Via: %s, so they bypassed the proxy: %q", proxyVia, direct)
	}
}

// requirePip returns the absolute path of a python3 that has pip. It asks
// the interpreter for sys.executable so that a pyenv shim, which needs the
// real HOME, is not what runs under the test's empty HOME.
func requirePip(t *testing.T) string {
	t.Helper()
	python3 := requireTool(t, "python3")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python3, "-c", "import sys, pip; print(sys.executable)").Output()
	if err != nil {
		missingTool(t, "python3 -c 'import pip': %v", err)
	}
	return strings.TrimSpace(string(out))
}

// pipInstall installs stagealpha (and so its dependencies) from indexURL into
// a fresh --target directory, through proxyURL unless it is empty, and
// checks that every fixture package landed there.
func pipInstall(t *testing.T, python, indexURL, proxyURL string, extraEnv ...string) {
	t.Helper()
	target := t.TempDir()
	env := toolEnv(t, proxyURL, append([]string{
		"PIP_CONFIG_FILE=/dev/null",
		"PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PIP_NO_INPUT=1",
		"PYTHONNOUSERSITE=1",
	}, extraEnv...)...)
	out := runTool(t, t.TempDir(), env, python, "-m", "pip", "install",
		"--no-cache-dir", "--index-url", indexURL, "--target", target, "stagealpha")
	for _, w := range pypiFixture {
		init := filepath.Join(target, w.Project, "__init__.py")
		if _, err := os.Stat(init); err != nil {
			t.Errorf("pip install stagealpha: %v\npip output:\n%s", err, out)
		}
	}
}
