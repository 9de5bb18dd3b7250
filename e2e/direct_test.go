//go:build e2e

package e2e

import (
	"net/http"
	"testing"
)

// TestRegistriesWithoutProxy runs pip and npm straight against the loopback
// registries, with no proxy. It checks the fixtures (wheels, simple pages,
// packuments, tarballs): when it passes and the proxied tests fail, the
// fault is the proxy's.
func TestRegistriesWithoutProxy(t *testing.T) {
	t.Parallel()
	t.Run("pip", func(t *testing.T) {
		python := requirePip(t)
		index, rec := newOrigin(t, func(string) http.Handler { return newSimpleIndex(t, pypiFixture) })
		pipInstall(t, python, index.URL+"/simple/", "")
		for _, w := range pypiFixture {
			if got := rec.count(wheelPath(w)); got != 1 {
				t.Errorf("index served %s %d times, want 1\n%s", wheelPath(w), got, rec.String())
			}
		}
	})
	t.Run("npm", func(t *testing.T) {
		npm := requireTool(t, "npm")
		registry, rec := newOrigin(t, func(base string) http.Handler { return newNPMRegistry(t, base, npmFixture) })
		npmInstall(t, npm, registry.URL+"/", "")
		for _, p := range npmFixture {
			if got := rec.count(p.tarballPath()); got != 1 {
				t.Errorf("registry served %s %d times, want 1\n%s", p.tarballPath(), got, rec.String())
			}
		}
	})
}
