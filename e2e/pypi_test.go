//go:build e2e

package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// wheel is a pure-Python distribution the loopback index serves.
type wheel struct {
	Project  string // normalized project name (PEP 503), also the package
	Version  string
	Requires []string // Requires-Dist lines, e.g. "stagebeta>=1.0"
}

// Filename is the wheel's file name (PEP 427).
func (w wheel) Filename() string {
	return fmt.Sprintf("%s-%s-py3-none-any.whl", w.Project, w.Version)
}

// build returns the wheel's bytes: a zip holding PROJECT/__init__.py and
// the .dist-info files (METADATA, WHEEL, and RECORD with the sha256 and
// size of every other file), as pip's installer checks them.
func (w wheel) build(t *testing.T) []byte {
	t.Helper()
	distInfo := fmt.Sprintf("%s-%s.dist-info", w.Project, w.Version)
	var metadata strings.Builder
	fmt.Fprintf(&metadata, "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: stageproxy e2e fixture\nRequires-Python: >=3.7\n", w.Project, w.Version)
	for _, r := range w.Requires {
		fmt.Fprintf(&metadata, "Requires-Dist: %s\n", r)
	}
	files := []struct{ name, body string }{
		{w.Project + "/__init__.py", fmt.Sprintf("NAME = %q\nVERSION = %q\n", w.Project, w.Version)},
		{distInfo + "/METADATA", metadata.String()},
		{distInfo + "/WHEEL", "Wheel-Version: 1.0\nGenerator: stageproxy-e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	add := func(name, body string) {
		fw, err := zw.CreateHeader(&zip.FileHeader{
			Name:     name,
			Method:   zip.Deflate,
			Modified: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		add(f.name, f.body)
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", distInfo)
	add(distInfo+"/RECORD", record.String())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pypiFixture is the set of wheels the index serves: stagealpha needs
// stagebeta, which needs stagegamma, so pip must resolve dependencies.
var pypiFixture = []wheel{
	{Project: "stagealpha", Version: "1.0", Requires: []string{"stagebeta>=1.0"}},
	{Project: "stagebeta", Version: "1.0", Requires: []string{"stagegamma"}},
	{Project: "stagegamma", Version: "1.0"},
}

// pypiModTime is the Last-Modified of everything the index serves.
var pypiModTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// simpleIndex is a PEP 503 "simple" repository on loopback, answering with
// the headers PyPI sends (FIELD-NOTES 6.3):
//
//	/simple/ and /simple/NAME/: Cache-Control: max-age=600, public; Vary:
//	Accept; an ETag, honoured in If-None-Match with 304.
//	/files/FILE.whl: Cache-Control: max-age=365000000, immutable, public;
//	ETag; Content-Length; conditional headers ignored, as PyPI's edge
//	strips them, so a request always costs a full 200.
type simpleIndex struct {
	pages map[string][]byte // URL path → HTML
	files map[string][]byte // URL path → wheel
}

// wheelPath is the URL path of w on the index.
func wheelPath(w wheel) string { return "/files/" + w.Filename() }

// wheelPaths are the paths of every wheel in pypiFixture.
func wheelPaths() []string {
	var ps []string
	for _, w := range pypiFixture {
		ps = append(ps, wheelPath(w))
	}
	return ps
}

func newSimpleIndex(t *testing.T, wheels []wheel) *simpleIndex {
	t.Helper()
	idx := &simpleIndex{pages: map[string][]byte{}, files: map[string][]byte{}}
	var root strings.Builder
	root.WriteString(simpleHead("Simple index"))
	byProject := map[string][]wheel{}
	for _, w := range wheels {
		byProject[w.Project] = append(byProject[w.Project], w)
	}
	for _, project := range slices.Sorted(maps.Keys(byProject)) {
		fmt.Fprintf(&root, "<a href=\"/simple/%s/\">%s</a>\n", project, project)
		var page strings.Builder
		page.WriteString(simpleHead("Links for " + project))
		for _, w := range byProject[project] {
			body := w.build(t)
			sum := sha256.Sum256(body)
			idx.files[wheelPath(w)] = body
			fmt.Fprintf(&page, "<a href=\"%s#sha256=%s\" data-requires-python=\"%s\">%s</a><br/>\n",
				wheelPath(w), hex.EncodeToString(sum[:]), html.EscapeString(">=3.7"), w.Filename())
		}
		page.WriteString("</body>\n</html>\n")
		idx.pages["/simple/"+project+"/"] = []byte(page.String())
	}
	root.WriteString("</body>\n</html>\n")
	idx.pages["/simple/"] = []byte(root.String())
	return idx
}

func simpleHead(title string) string {
	return "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n<title>" +
		title + "</title>\n</head>\n<body>\n<h1>" + title + "</h1>\n"
}

func (idx *simpleIndex) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if page, ok := idx.pages[r.URL.Path]; ok {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "max-age=600, public")
		h.Set("Vary", "Accept")
		h.Set("ETag", strongETag(page))
		http.ServeContent(w, r, "", pypiModTime, bytes.NewReader(page))
		return
	}
	if file, ok := idx.files[r.URL.Path]; ok {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Cache-Control", "max-age=365000000, immutable, public")
		h.Set("ETag", strongETag(file))
		r.Header.Del("If-None-Match")
		r.Header.Del("If-Modified-Since")
		http.ServeContent(w, r, "", pypiModTime, bytes.NewReader(file))
		return
	}
	if strings.HasPrefix(r.URL.Path, "/simple/") && !strings.HasSuffix(r.URL.Path, "/") {
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
		return
	}
	http.NotFound(w, r)
}

// strongETag is a validator derived from body.
func strongETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}
