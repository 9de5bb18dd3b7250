//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// npmPackage is a package the loopback registry serves, in one version.
type npmPackage struct {
	Name         string
	Version      string
	Dependencies map[string]string
}

// tarballPath is the URL path of p's tarball, in the public registry's
// layout /NAME/-/NAME-VERSION.tgz.
func (p npmPackage) tarballPath() string {
	return fmt.Sprintf("/%s/-/%s-%s.tgz", p.Name, p.Name, p.Version)
}

// manifest is p's package.json.
func (p npmPackage) manifest() map[string]any {
	m := map[string]any{
		"name":        p.Name,
		"version":     p.Version,
		"description": "stageproxy e2e fixture",
		"main":        "index.js",
		"license":     "MIT",
	}
	if len(p.Dependencies) > 0 {
		m["dependencies"] = p.Dependencies
	}
	return m
}

// tarball returns the .tgz npm publishes: a gzip'd tar of
// package/package.json and package/index.js.
func (p npmPackage) tarball(t *testing.T) []byte {
	t.Helper()
	pkgJSON, err := json.MarshalIndent(p.manifest(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files := []struct{ name, body string }{
		{"package/package.json", string(pkgJSON) + "\n"},
		{"package/index.js", fmt.Sprintf("module.exports = %q;\n", p.Name+"@"+p.Version)},
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := &tar.Header{
			Name:     f.name,
			Mode:     0o644,
			Size:     int64(len(f.body)),
			ModTime:  npmModTime,
			Typeflag: tar.TypeReg,
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// npmFixture: stagefoo depends on stagebar, so npm resolves a dependency.
var npmFixture = []npmPackage{
	{Name: "stagefoo", Version: "1.0.0", Dependencies: map[string]string{"stagebar": "^1.0.0"}},
	{Name: "stagebar", Version: "1.0.0"},
}

// npmModTime is the Last-Modified and publication time of every package.
var npmModTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// npmRegistry is an npm registry on loopback, answering with the headers
// the public registry sends (FIELD-NOTES 6.3):
//
//	/NAME (packument): cache-control: public, max-age=300; etag;
//	last-modified; Vary: Accept-Encoding, Accept; conditionals honoured.
//	/NAME/-/NAME-VER.tgz: cache-control: public, max-age=31536000,
//	immutable (the public registry's value is unconfirmed; a published
//	version can never change, so immutable is the policy).
//
// It serves the same full packument whatever the Accept header asks for;
// npm accepts a full document where it asked for the abbreviated one.
type npmRegistry struct {
	packuments map[string][]byte // URL path → JSON
	tarballs   map[string][]byte // URL path → .tgz
}

func newNPMRegistry(t *testing.T, baseURL string, pkgs []npmPackage) *npmRegistry {
	t.Helper()
	reg := &npmRegistry{packuments: map[string][]byte{}, tarballs: map[string][]byte{}}
	published := npmModTime.Format(time.RFC3339)
	for _, p := range pkgs {
		tgz := p.tarball(t)
		reg.tarballs[p.tarballPath()] = tgz
		sha512Sum := sha512.Sum512(tgz)
		sha1Sum := sha1.Sum(tgz)
		version := p.manifest()
		version["_id"] = p.Name + "@" + p.Version
		version["dist"] = map[string]any{
			"tarball":   baseURL + p.tarballPath(),
			"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512Sum[:]),
			"shasum":    hex.EncodeToString(sha1Sum[:]),
		}
		doc := map[string]any{
			"_id":       p.Name,
			"name":      p.Name,
			"dist-tags": map[string]string{"latest": p.Version},
			"versions":  map[string]any{p.Version: version},
			"time":      map[string]string{"created": published, "modified": published, p.Version: published},
			"modified":  published,
		}
		body, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		reg.packuments["/"+p.Name] = body
	}
	return reg
}

func (reg *npmRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, `{"error":"method not allowed"}`, http.StatusMethodNotAllowed)
		return
	}
	if doc, ok := reg.packuments[r.URL.Path]; ok {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("Vary", "Accept-Encoding, Accept")
		h.Set("ETag", strongETag(doc))
		http.ServeContent(w, r, "", npmModTime, bytes.NewReader(doc))
		return
	}
	if tgz, ok := reg.tarballs[r.URL.Path]; ok {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", strongETag(tgz))
		http.ServeContent(w, r, "", npmModTime, bytes.NewReader(tgz))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintln(w, `{"error":"Not found"}`)
}

// tarballPaths are the paths of every tarball in npmFixture.
func tarballPaths() []string {
	var ps []string
	for _, p := range npmFixture {
		ps = append(ps, p.tarballPath())
	}
	return ps
}
