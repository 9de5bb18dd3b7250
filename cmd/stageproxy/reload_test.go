package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stageproxy/stageproxy/internal/testparent"
)

// waitLog waits for a log line containing want, bounded by 10 s.
func waitLog(t *testing.T, log *lineCollector, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-log.lines:
			if strings.Contains(l, want) {
				return l
			}
		case <-timeout:
			t.Fatalf("no log line with %q within 10 s; log:\n%s", want, log.String())
		}
	}
}

// TestUpstreamAppliedLive: writing parent keys into the config file of a
// running serve sends requests through the parent, with the cache kept;
// removing them goes direct again; a broken file is ignored.
func TestUpstreamAppliedLive(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "origin "+r.URL.Path)
	}))
	t.Cleanup(origin.Close)
	parent := testparent.NewHTTP(t, "u", "p")
	parentAddr := parent.Addr

	conf := writeFile(t, "stageproxy.conf", "# hand-written\ncacheSize = 10MB\n")
	addr, _, log, _ := startServe(t, conf, nil)
	proxyURL, _ := url.Parse("http://" + addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	get := func(path string) (string, string) {
		t.Helper()
		resp, err := client.Get(origin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("Cache-Status")
	}
	get("/cached-before")

	write := func(content string) {
		t.Helper()
		tmp := conf + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, conf); err != nil {
			t.Fatal(err)
		}
	}
	write("# hand-written\ncacheSize = 10MB\nparentProxy = " + parentAddr + "\nparentAuthCredentials = \"u:p\"\n")
	line := waitLog(t, log, "upstream proxy changed")
	if strings.Contains(line, "u:p") || strings.Contains(line, ":p@") {
		t.Errorf("log line shows the credentials: %q", line)
	}
	if body, _ := get("/through-parent"); body != "origin /through-parent" || parent.Relayed.Load() != 1 {
		t.Errorf("after set: body %q, parent relayed %d, want 1", body, parent.Relayed.Load())
	}
	if _, status := get("/cached-before"); status != "stageproxy; hit" {
		t.Errorf("object cached before the change: %q, want a hit", status)
	}

	write("parentProxy = \n  this line is broken\n")
	waitLog(t, log, "config file not applied")
	if body, _ := get("/still-parent"); body != "origin /still-parent" || parent.Relayed.Load() != 2 {
		t.Errorf("after a broken file: %q, parent relayed %d, want 2 (last good configuration kept)", body, parent.Relayed.Load())
	}

	write("# hand-written\ncacheSize = 10MB\n")
	waitLog(t, log, "to=direct")
	get("/direct")
	if n := parent.Relayed.Load(); n != 2 {
		t.Errorf("after delete: parent relayed %d, want still 2", n)
	}

	// Keys a reload does not apply are named, not silently ignored.
	write("# hand-written\ncacheSize = 20MB\nallowedClients = 127.0.0.1, 10.0.0.0/8\n")
	if line := waitLog(t, log, "take effect at the next start"); !strings.Contains(line, "allowedClients, cacheSize") {
		t.Errorf("reload warning does not name allowedClients and cacheSize: %q", line)
	}
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	waitLog(t, log, "config file is gone")
}
