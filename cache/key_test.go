package cache

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// newRequest builds a request for rawURL with header fields given as
// name, value pairs.
func newRequest(t *testing.T, method, rawURL string, kv ...string) *http.Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", rawURL, err)
	}
	return &http.Request{Method: method, URL: u, Host: u.Host, Header: header(kv...)}
}

// header builds a header from name, value pairs; a name may repeat.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestPrimaryKeyURL(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"plain", "http://example.com/a/b", "http://example.com/a/b"},
		{"host case", "http://Example.COM/Path", "http://example.com/Path"},
		{"scheme case", "HTTP://example.com/", "http://example.com/"},
		{"default http port", "http://example.com:80/x", "http://example.com/x"},
		{"default https port", "https://example.com:443/x", "https://example.com/x"},
		{"other port kept", "http://example.com:8080/x", "http://example.com:8080/x"},
		{"443 on http kept", "http://example.com:443/x", "http://example.com:443/x"},
		{"empty port", "http://example.com:/x", "http://example.com/x"},
		{"empty path", "http://example.com", "http://example.com/"},
		{"empty path with query", "http://example.com?a=1", "http://example.com/?a=1"},
		{"fragment dropped", "http://example.com/a#frag", "http://example.com/a"},
		{"query byte for byte", "http://example.com/a?b=%2F&a=1&A=x+y", "http://example.com/a?b=%2F&a=1&A=x+y"},
		{"empty query kept", "http://example.com/a?", "http://example.com/a?"},
		{"escaped path kept", "http://example.com/a%2Fb/c%20d", "http://example.com/a%2Fb/c%20d"},
		{"userinfo dropped", "http://user:pw@example.com/a", "http://example.com/a"},
		{"ipv6 default port", "http://[::1]:80/a", "http://[::1]/a"},
		{"ipv6 other port", "http://[::1]:8123/a", "http://[::1]:8123/a"},
		{"pypi simple", "https://pypi.org/simple/requests/", "https://pypi.org/simple/requests/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := PrimaryKeyURL(u); got != tt.want {
				t.Errorf("PrimaryKeyURL(%q) = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}

func TestPrimaryKey(t *testing.T) {
	tests := []struct {
		name string
		req  *http.Request
		want string
	}{
		{
			name: "absolute URL",
			req:  newRequest(t, "GET", "http://Registry.NPMJS.org:80/left-pad"),
			want: "http://registry.npmjs.org/left-pad",
		},
		{
			name: "HEAD shares the GET key",
			req:  newRequest(t, "HEAD", "http://registry.npmjs.org/left-pad"),
			want: "http://registry.npmjs.org/left-pad",
		},
		{
			name: "origin-form uses Host",
			req:  &http.Request{Method: "GET", URL: &url.URL{Path: "/simple/"}, Host: "PyPI.org:80"},
			want: "http://pypi.org/simple/",
		},
		{
			name: "origin-form over TLS is https",
			req:  &http.Request{Method: "GET", URL: &url.URL{Path: "/simple/"}, Host: "pypi.org:443", TLS: &tls.ConnectionState{}},
			want: "https://pypi.org/simple/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrimaryKey(tt.req); got != tt.want {
				t.Errorf("PrimaryKey(%s) = %q, want %q", tt.req.URL, got, tt.want)
			}
		})
	}
}

func TestVaryNames(t *testing.T) {
	tests := []struct {
		name     string
		h        http.Header
		want     []string
		wantStar bool
	}{
		{"none", header(), nil, false},
		{"one", header("Vary", "Accept"), []string{"Accept"}, false},
		{"canonicalised and sorted", header("Vary", "accept-encoding, ACCEPT"), []string{"Accept", "Accept-Encoding"}, false},
		{"several lines deduplicated", header("Vary", "Accept-Encoding", "Vary", "Accept,accept-encoding"), []string{"Accept", "Accept-Encoding"}, false},
		{"empty members", header("Vary", " , Accept ,, "), []string{"Accept"}, false},
		{"star", header("Vary", "Accept, *"), []string{"Accept"}, true},
		{"star alone", header("Vary", "*"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, star := VaryNames(tt.h)
			if !slices.Equal(got, tt.want) || star != tt.wantStar {
				t.Errorf("VaryNames(%v) = %q, %v, want %q, %v", tt.h, got, star, tt.want, tt.wantStar)
			}
		})
	}
}

func TestVaryValues(t *testing.T) {
	const npmCorgi = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
	tests := []struct {
		name  string
		h     http.Header
		names []string
		want  []string
	}{
		{"no names", header("Accept", "x"), nil, nil},
		{"absent header", header(), []string{"Accept"}, []string{""}},
		{"npm corgi unchanged", header("Accept", npmCorgi), []string{"Accept"}, []string{npmCorgi}},
		{"whitespace around commas", header("Accept", "  a ,b,   c  "), []string{"Accept"}, []string{"a, b, c"}},
		{"lines joined", header("Accept", "a", "Accept", "b, c"), []string{"Accept"}, []string{"a, b, c"}},
		{"empty members dropped", header("Accept", "a,, ,b"), []string{"Accept"}, []string{"a, b"}},
		{"several names in order", header("Accept-Encoding", "gzip,deflate", "Accept", "text/html"), []string{"Accept", "Accept-Encoding"}, []string{"text/html", "gzip, deflate"}},
		{"order of members kept", header("Accept-Encoding", "deflate, gzip"), []string{"Accept-Encoding"}, []string{"deflate, gzip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VaryValues(tt.h, tt.names); !slices.Equal(got, tt.want) {
				t.Errorf("VaryValues(%v, %q) = %q, want %q", tt.h, tt.names, got, tt.want)
			}
		})
	}
}

func TestVariantKey(t *testing.T) {
	tests := []struct {
		name    string
		primary string
		values  []string
		want    string
	}{
		{"no values", "http://a/", nil, "http://a/\x00"},
		{"one", "http://a/", []string{"text/html"}, "http://a/\x00text/html"},
		{"two", "http://a/", []string{"x", "gzip"}, "http://a/\x00x\x00gzip"},
		{"empty value", "http://a/", []string{""}, "http://a/\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VariantKey(tt.primary, tt.values); got != tt.want {
				t.Errorf("VariantKey(%q, %q) = %q, want %q", tt.primary, tt.values, got, tt.want)
			}
		})
	}
	if a, b := VariantKey("p", []string{"a", "b"}), VariantKey("p", []string{"a, b"}); a == b {
		t.Errorf("VariantKey: two values and one joined value collide: %q", a)
	}
}

func TestMatchesVary(t *testing.T) {
	e := &Entry{Vary: []string{"Accept", "Accept-Encoding"}, VaryValues: []string{"application/json", "gzip, deflate"}}
	tests := []struct {
		name string
		e    *Entry
		h    http.Header
		want bool
	}{
		{"same", e, header("Accept", "application/json", "Accept-Encoding", "gzip, deflate"), true},
		{"same after normalising", e, header("Accept", " application/json ", "Accept-Encoding", "gzip", "Accept-Encoding", "deflate"), true},
		{"other Accept", e, header("Accept", "application/vnd.npm.install-v1+json", "Accept-Encoding", "gzip, deflate"), false},
		{"header missing", e, header("Accept", "application/json"), false},
		{"unrelated header ignored", e, header("Accept", "application/json", "Accept-Encoding", "gzip, deflate", "User-Agent", "npm"), true},
		{"no Vary matches anything", &Entry{}, header("Accept", "x"), true},
		{"absent then and now", &Entry{Vary: []string{"Accept"}, VaryValues: []string{""}}, header(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.MatchesVary(tt.h); got != tt.want {
				t.Errorf("MatchesVary(%v) = %v, want %v", tt.h, got, tt.want)
			}
		})
	}
}
