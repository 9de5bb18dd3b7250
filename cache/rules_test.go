package cache

import (
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"
)

// t0 is the fixed clock of these tests: when the stored responses arrived.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// httpDate formats t as an HTTP-date.
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// entry is a 200 received at t0 (sent at t0) with header fields kv.
func entry(kv ...string) *Entry {
	return &Entry{Status: 200, Header: header(kv...), Body: []byte("body"), RequestTime: t0, ResponseTime: t0}
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want CacheControl
	}{
		{"absent", header(), CacheControl{}},
		{"pypi simple", header("Cache-Control", "max-age=600, public"), CacheControl{"max-age": "600", "public": ""}},
		{"pypi files", header("Cache-Control", "max-age=365000000, immutable, public"), CacheControl{"max-age": "365000000", "immutable": "", "public": ""}},
		{"lower-cased names, values kept", header("Cache-Control", "Max-Age=5, No-Cache=\"Set-Cookie\""), CacheControl{"max-age": "5", "no-cache": "Set-Cookie"}},
		{"several lines", header("Cache-Control", "no-cache", "Cache-Control", "max-age=0"), CacheControl{"no-cache": "", "max-age": "0"}},
		{"quoted comma does not split", header("Cache-Control", `private="Set-Cookie, X-Foo", max-age=1`), CacheControl{"private": "Set-Cookie, X-Foo", "max-age": "1"}},
		{"escaped quote", header("Cache-Control", `ext="a\"b", x`), CacheControl{"ext": `a"b`, "x": ""}},
		{"whitespace", header("Cache-Control", "  max-age = 60 ,\tpublic  "), CacheControl{"max-age": "60", "public": ""}},
		{"empty members", header("Cache-Control", ",,, no-store ,,"), CacheControl{"no-store": ""}},
		{"first duplicate wins", header("Cache-Control", "max-age=1, max-age=2"), CacheControl{"max-age": "1"}},
		{"unterminated quote", header("Cache-Control", `a="x, y`), CacheControl{"a": "x, y"}},
		{"junk after quoted value", header("Cache-Control", `a="x"junk, b`), CacheControl{"a": "x", "b": ""}},
		{"empty value", header("Cache-Control", "max-age=, public"), CacheControl{"max-age": "", "public": ""}},
		{"stray equals", header("Cache-Control", "=5, public"), CacheControl{"public": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCacheControl(tt.h); !maps.Equal(got, tt.want) {
				t.Errorf("ParseCacheControl(%q) = %q, want %q", tt.h.Values("Cache-Control"), got, tt.want)
			}
		})
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=600, public", `private="a, b"`, `a="\`, "=,=,", "max-age=99999999999999999999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cc := ParseCacheControl(header("Cache-Control", s))
		for name := range cc {
			if name == "" {
				t.Errorf("ParseCacheControl(%q) has an empty directive name", s)
			}
			if d, ok := cc.Seconds(name); ok && (d < 0 || d > maxDelta) {
				t.Errorf("ParseCacheControl(%q).Seconds(%q) = %v, out of range", s, name, d)
			}
		}
	})
}

func TestCacheControlSeconds(t *testing.T) {
	tests := []struct {
		name, value string
		present     bool
		want        time.Duration
		wantOK      bool
	}{
		{name: "missing", present: false},
		{name: "no value", present: true, value: ""},
		{name: "zero", present: true, value: "0", want: 0, wantOK: true},
		{name: "600", present: true, value: "600", want: 600 * time.Second, wantOK: true},
		{name: "leading zeros", present: true, value: "007", want: 7 * time.Second, wantOK: true},
		{name: "negative", present: true, value: "-1"},
		{name: "plus sign", present: true, value: "+1"},
		{name: "fraction", present: true, value: "1.5"},
		{name: "letters", present: true, value: "ten"},
		{name: "just below 2^31", present: true, value: "2147483647", want: 2147483647 * time.Second, wantOK: true},
		{name: "2^31 saturates", present: true, value: "2147483648", want: maxDelta, wantOK: true},
		{name: "huge saturates", present: true, value: "99999999999999999999999999", want: maxDelta, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := CacheControl{}
			if tt.present {
				cc["max-age"] = tt.value
			}
			got, ok := cc.Seconds("max-age")
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Seconds(%q) = %v, %v, want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestStorable(t *testing.T) {
	get := func(kv ...string) *http.Request { return newRequest(t, "GET", "http://example.com/x", kv...) }
	tests := []struct {
		name   string
		req    *http.Request
		status int
		h      http.Header
		want   bool
	}{
		{"pypi simple page", get(), 200, header("Cache-Control", "max-age=600, public", "Vary", "Accept"), true},
		{"plain 200 heuristic", get(), 200, header(), true},
		{"plain 404 heuristic", get(), 404, header(), true},
		{"301 heuristic", get(), 301, header("Location", "/y"), true},
		{"HEAD not stored", newRequest(t, "HEAD", "http://example.com/x"), 200, header("Cache-Control", "max-age=60"), false},
		{"POST not stored", newRequest(t, "POST", "http://example.com/x"), 200, header("Cache-Control", "max-age=60"), false},
		{"206", get(), 206, header("Cache-Control", "max-age=60"), false},
		{"304", get(), 304, header("Cache-Control", "max-age=60"), false},
		{"1xx", get(), 103, header("Cache-Control", "max-age=60"), false},
		{"response no-store", get(), 200, header("Cache-Control", "max-age=60, no-store"), false},
		{"request no-store", get("Cache-Control", "no-store"), 200, header("Cache-Control", "max-age=60"), false},
		{"private", get(), 200, header("Cache-Control", "private, max-age=60"), false},
		{"qualified private", get(), 200, header("Cache-Control", `private="Set-Cookie", max-age=60`), false},
		{"vary star", get(), 200, header("Cache-Control", "max-age=60", "Vary", "Accept, *"), false},
		{"authorization refused", get("Authorization", "Basic eDp5"), 200, header("Cache-Control", "max-age=60"), false},
		{"authorization with public", get("Authorization", "Basic eDp5"), 200, header("Cache-Control", "public, max-age=60"), true},
		{"authorization with must-revalidate", get("Authorization", "Basic eDp5"), 200, header("Cache-Control", "must-revalidate, max-age=60"), true},
		{"authorization with s-maxage", get("Authorization", "Basic eDp5"), 200, header("Cache-Control", "s-maxage=60"), true},
		{"302 without freshness", get(), 302, header("Location", "/y"), false},
		{"302 with max-age", get(), 302, header("Cache-Control", "max-age=60"), true},
		{"302 with s-maxage", get(), 302, header("Cache-Control", "s-maxage=60"), true},
		{"302 with Expires", get(), 302, header("Expires", httpDate(t0.Add(time.Hour))), true},
		{"302 with public", get(), 302, header("Cache-Control", "public"), true},
		{"500 without freshness", get(), 500, header(), false},
		{"no-cache with validator", get(), 200, header("Cache-Control", "no-cache", "Etag", `"v1"`), true},
		{"302 no-cache with validator", get(), 302, header("Cache-Control", "no-cache", "Etag", `"v1"`), false},
		{"must-understand known status", get(), 200, header("Cache-Control", "must-understand, max-age=60"), true},
		{"must-understand unknown status", get(), 302, header("Cache-Control", "must-understand, max-age=60"), false},
		{"must-understand does not override no-store", get(), 200, header("Cache-Control", "must-understand, no-store"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Storable(tt.req, tt.status, tt.h); got != tt.want {
				t.Errorf("Storable(%s %d %v) = %v, want %v", tt.req.Method, tt.status, tt.h, got, tt.want)
			}
		})
	}
}

func TestFreshnessLifetime(t *testing.T) {
	date := httpDate(t0)
	tests := []struct {
		name   string
		status int
		h      http.Header
		want   time.Duration
	}{
		{"max-age", 200, header("Cache-Control", "max-age=600"), 600 * time.Second},
		{"s-maxage overrides max-age", 200, header("Cache-Control", "max-age=600, s-maxage=60"), 60 * time.Second},
		{"s-maxage overrides Expires", 200, header("Cache-Control", "s-maxage=60", "Date", date, "Expires", httpDate(t0.Add(time.Hour))), 60 * time.Second},
		{"max-age overrides Expires", 200, header("Cache-Control", "max-age=5", "Date", date, "Expires", httpDate(t0.Add(time.Hour))), 5 * time.Second},
		{"invalid max-age is stale", 200, header("Cache-Control", "max-age=soon", "Last-Modified", httpDate(t0.Add(-100*time.Hour))), 0},
		{"invalid s-maxage is stale", 200, header("Cache-Control", "s-maxage=-1, max-age=600"), 0},
		{"huge max-age saturates", 200, header("Cache-Control", "max-age=99999999999"), maxDelta},
		{"immutable file", 200, header("Cache-Control", "max-age=365000000, immutable, public"), 365000000 * time.Second},
		{"Expires minus Date", 200, header("Date", date, "Expires", httpDate(t0.Add(time.Hour))), time.Hour},
		{"Expires with skewed Date", 200, header("Date", httpDate(t0.Add(-10*time.Minute)), "Expires", httpDate(t0.Add(time.Hour))), 70 * time.Minute},
		{"Expires without Date uses response time", 200, header("Expires", httpDate(t0.Add(30*time.Minute))), 30 * time.Minute},
		{"Expires in the past", 200, header("Date", date, "Expires", httpDate(t0.Add(-time.Hour))), 0},
		{"invalid Expires is stale", 200, header("Date", date, "Expires", "0", "Last-Modified", httpDate(t0.Add(-100*time.Hour))), 0},
		{"Expires on a 302", 302, header("Date", date, "Expires", httpDate(t0.Add(time.Hour))), time.Hour},
		{"heuristic 10%", 200, header("Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), time.Hour},
		{"heuristic capped at 24h", 200, header("Date", date, "Last-Modified", httpDate(t0.Add(-365*24*time.Hour))), 24 * time.Hour},
		{"heuristic without Date", 404, header("Last-Modified", httpDate(t0.Add(-10*time.Hour))), time.Hour},
		{"heuristic Last-Modified in future", 200, header("Date", date, "Last-Modified", httpDate(t0.Add(time.Hour))), 0},
		{"heuristic not for 302", 302, header("Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), 0},
		{"nothing", 200, header("Date", date), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FreshnessLifetime(tt.status, tt.h, t0); got != tt.want {
				t.Errorf("FreshnessLifetime(%d, %v) = %v, want %v", tt.status, tt.h, got, tt.want)
			}
		})
	}
}

func TestCurrentAge(t *testing.T) {
	tests := []struct {
		name             string
		h                http.Header
		requestTime, now time.Time
		want             time.Duration
	}{
		{"just arrived", header("Date", httpDate(t0)), t0, t0, 0},
		{"resident time", header("Date", httpDate(t0)), t0, t0.Add(299 * time.Second), 299 * time.Second},
		{"Age header", header("Date", httpDate(t0), "Age", "1000"), t0, t0, 1000 * time.Second},
		{"Age plus response delay", header("Date", httpDate(t0), "Age", "10"), t0.Add(-2 * time.Second), t0, 12 * time.Second},
		{"apparent age from Date", header("Date", httpDate(t0.Add(-30*time.Second))), t0, t0, 30 * time.Second},
		{"apparent age beats smaller Age", header("Date", httpDate(t0.Add(-30*time.Second)), "Age", "5"), t0, t0.Add(time.Second), 31 * time.Second},
		{"Date in the future", header("Date", httpDate(t0.Add(time.Hour))), t0, t0, 0},
		{"no Date", header(), t0.Add(-time.Second), t0, time.Second},
		{"invalid Age ignored", header("Date", httpDate(t0), "Age", "-5"), t0, t0.Add(time.Second), time.Second},
		{"huge Age saturates", header("Age", "99999999999999"), t0, t0, maxDelta},
		{"clock went back", header("Date", httpDate(t0)), t0, t0.Add(-time.Hour), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CurrentAge(tt.h, tt.requestTime, t0, tt.now); got != tt.want {
				t.Errorf("CurrentAge(%v) = %v, want %v", tt.h, got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	date := httpDate(t0)
	get := func(kv ...string) *http.Request { return newRequest(t, "GET", "http://example.com/x", kv...) }
	pypiPage := entry("Cache-Control", "max-age=600, public", "Date", date, "Vary", "Accept", "Etag", `"abc"`)
	npm := entry("Cache-Control", "public, max-age=300", "Date", date, "Etag", `"p1"`)
	tests := []struct {
		name    string
		req     *http.Request
		e       *Entry
		now     time.Time
		want    Freshness
		wantAge time.Duration
	}{
		{"pypi page fresh", get(), pypiPage, t0.Add(10 * time.Second), Fresh, 10 * time.Second},
		{"pip max-age=0 forces validation", get("Cache-Control", "max-age=0"), pypiPage, t0.Add(10 * time.Second), Stale, 10 * time.Second},
		{"pip max-age=0 even at age 0", get("Cache-Control", "max-age=0"), pypiPage, t0, Stale, 0},
		{"pypi Age over max-age stale on arrival", get(), entry("Cache-Control", "max-age=600, public", "Date", date, "Age", "1000"), t0, Stale, 1000 * time.Second},
		{"npm fresh at 299s", get(), npm, t0.Add(299 * time.Second), Fresh, 299 * time.Second},
		{"npm stale at 300s", get(), npm, t0.Add(300 * time.Second), Stale, 300 * time.Second},
		{"npm stale at 301s", get(), npm, t0.Add(301 * time.Second), Stale, 301 * time.Second},
		{"immutable fresh after a year", get(), entry("Cache-Control", "max-age=365000000, immutable, public", "Date", date), t0.AddDate(1, 0, 0), Fresh, t0.AddDate(1, 0, 0).Sub(t0)},
		{"immutable still obeys request max-age=0", get("Cache-Control", "max-age=0"), entry("Cache-Control", "max-age=365000000, immutable, public"), t0.Add(time.Second), Stale, time.Second},
		{"request max-age not exceeded", get("Cache-Control", "max-age=60"), npm, t0.Add(60 * time.Second), Fresh, 60 * time.Second},
		{"request max-age exceeded", get("Cache-Control", "max-age=60"), npm, t0.Add(61 * time.Second), Stale, 61 * time.Second},
		{"request invalid max-age validates", get("Cache-Control", "max-age=x"), npm, t0.Add(time.Second), Stale, time.Second},
		{"request no-cache", get("Cache-Control", "no-cache"), npm, t0.Add(time.Second), Stale, time.Second},
		{"Pragma no-cache alone", get("Pragma", "no-cache"), npm, t0.Add(time.Second), Stale, time.Second},
		{"Pragma ignored with Cache-Control", get("Pragma", "no-cache", "Cache-Control", "max-age=60"), npm, t0.Add(time.Second), Fresh, time.Second},
		{"response no-cache", get(), entry("Cache-Control", "no-cache, max-age=600", "Etag", `"x"`), t0, Stale, 0},
		{"min-fresh satisfied", get("Cache-Control", "min-fresh=100"), npm, t0.Add(200 * time.Second), Fresh, 200 * time.Second},
		{"min-fresh not satisfied", get("Cache-Control", "min-fresh=100"), npm, t0.Add(201 * time.Second), Stale, 201 * time.Second},
		{"max-stale any", get("Cache-Control", "max-stale"), npm, t0.Add(time.Hour), Fresh, time.Hour},
		{"max-stale within", get("Cache-Control", "max-stale=60"), npm, t0.Add(360 * time.Second), Fresh, 360 * time.Second},
		{"max-stale exceeded", get("Cache-Control", "max-stale=60"), npm, t0.Add(361 * time.Second), Stale, 361 * time.Second},
		{"max-stale vs must-revalidate", get("Cache-Control", "max-stale"), entry("Cache-Control", "max-age=1, must-revalidate"), t0.Add(time.Hour), Stale, time.Hour},
		{"max-stale vs proxy-revalidate", get("Cache-Control", "max-stale"), entry("Cache-Control", "max-age=1, proxy-revalidate"), t0.Add(time.Hour), Stale, time.Hour},
		{"max-stale vs s-maxage", get("Cache-Control", "max-stale"), entry("Cache-Control", "s-maxage=1"), t0.Add(time.Hour), Stale, time.Hour},
		{"max-stale vs no-cache", get("Cache-Control", "max-stale"), entry("Cache-Control", "no-cache"), t0.Add(time.Hour), Stale, time.Hour},
		{"s-maxage shorter than max-age", get(), entry("Cache-Control", "max-age=600, s-maxage=60"), t0.Add(120 * time.Second), Stale, 120 * time.Second},
		{"Expires fresh", get(), entry("Date", date, "Expires", httpDate(t0.Add(time.Hour))), t0.Add(59 * time.Minute), Fresh, 59 * time.Minute},
		{"Expires stale", get(), entry("Date", date, "Expires", httpDate(t0.Add(time.Hour))), t0.Add(time.Hour), Stale, time.Hour},
		{"heuristic fresh", get(), entry("Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), t0.Add(59 * time.Minute), Fresh, 59 * time.Minute},
		{"heuristic stale", get(), entry("Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), t0.Add(61 * time.Minute), Stale, 61 * time.Minute},
		{"no freshness at all", get(), entry("Date", date), t0, Stale, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, age := Check(tt.req, tt.e, tt.now)
			if got != tt.want || age != tt.wantAge {
				t.Errorf("Check(%s) = %v, %v, want %v, %v", tt.name, got, age, tt.want, tt.wantAge)
			}
		})
	}
}

func TestStaleIfError(t *testing.T) {
	get := func(kv ...string) *http.Request { return newRequest(t, "GET", "http://example.com/x", kv...) }
	// Fresh for 300 s; the tests look at it 400 s later: stale by 100 s.
	now := t0.Add(400 * time.Second)
	sie := entry("Cache-Control", "max-age=300, stale-if-error=86400")
	plain := entry("Cache-Control", "max-age=300")
	tests := []struct {
		name    string
		req     *http.Request
		e       *Entry
		relaxed bool
		want    bool
	}{
		{"response stale-if-error within", get(), sie, false, true},
		{"response stale-if-error exceeded", get(), entry("Cache-Control", "max-age=300, stale-if-error=99"), false, false},
		{"response stale-if-error at the limit", get(), entry("Cache-Control", "max-age=300, stale-if-error=100"), false, true},
		{"request stale-if-error within", get("Cache-Control", "stale-if-error=100"), plain, false, true},
		{"request stale-if-error exceeded", get("Cache-Control", "stale-if-error=99"), plain, false, false},
		{"request limit wins over response", get("Cache-Control", "stale-if-error=10"), sie, false, false},
		{"neither", get(), plain, false, false},
		{"relaxed", get(), plain, true, true},
		{"relaxed ignores staleness", get(), entry("Cache-Control", "max-age=0"), true, true},
		{"request no-cache blocks response permission", get("Cache-Control", "no-cache"), sie, false, false},
		{"Pragma no-cache blocks response permission", get("Pragma", "no-cache"), sie, false, false},
		{"request no-cache with own stale-if-error", get("Cache-Control", "no-cache, stale-if-error=200"), plain, false, true},
		{"request no-cache but relaxed", get("Cache-Control", "no-cache"), plain, true, true},
		{"must-revalidate even relaxed", get(), entry("Cache-Control", "max-age=300, must-revalidate, stale-if-error=86400"), true, false},
		{"proxy-revalidate even relaxed", get(), entry("Cache-Control", "max-age=300, proxy-revalidate"), true, false},
		{"s-maxage even relaxed", get("Cache-Control", "stale-if-error=86400"), entry("Cache-Control", "s-maxage=300"), true, false},
		{"response no-cache even relaxed", get(), entry("Cache-Control", "no-cache, stale-if-error=86400"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StaleIfError(tt.req, tt.e, now, tt.relaxed); got != tt.want {
				t.Errorf("StaleIfError(%s, relaxed=%v) = %v, want %v", tt.name, tt.relaxed, got, tt.want)
			}
		})
	}
}

func TestAddValidators(t *testing.T) {
	lm := httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name string
		e    *Entry
		want http.Header
	}{
		{"etag", entry("Etag", `W/"v1"`), header("If-None-Match", `W/"v1"`)},
		{"last-modified", entry("Last-Modified", lm), header("If-Modified-Since", lm)},
		{"both", entry("Etag", `"v1"`, "Last-Modified", lm), header("If-None-Match", `"v1"`, "If-Modified-Since", lm)},
		{"none", entry("Date", httpDate(t0)), header()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header("Accept", "text/html")
			AddValidators(h, tt.e)
			tt.want.Set("Accept", "text/html")
			if !equalHeader(h, tt.want) {
				t.Errorf("AddValidators(%v) = %v, want %v", tt.e.Header, h, tt.want)
			}
		})
	}
}

func equalHeader(a, b http.Header) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}

func TestMerge304(t *testing.T) {
	stored := &Entry{
		Status: 200,
		Header: header(
			"Content-Type", "application/json",
			"Content-Length", "4",
			"Content-Encoding", "gzip",
			"Cache-Control", "public, max-age=300",
			"Etag", `"p1"`,
			"Date", httpDate(t0),
			"Age", "100",
			"Vary", "Accept-Encoding, Accept",
			"X-Old", "kept",
		),
		Body:        []byte("body"),
		RequestTime: t0, ResponseTime: t0,
		Vary:       []string{"Accept", "Accept-Encoding"},
		VaryValues: []string{"application/json", "gzip"},
	}
	before := stored.Header.Clone()
	t1, t2 := t0.Add(time.Hour), t0.Add(time.Hour+time.Second)

	tests := []struct {
		name string
		h304 http.Header
		want http.Header // fields checked; "" means absent
	}{
		{
			name: "fields replaced, body fields kept",
			h304: header("Cache-Control", "public, max-age=600", "Date", httpDate(t2), "Etag", `"p1"`,
				"Content-Length", "0", "Content-Encoding", "br", "X-New", "added"),
			want: header("Cache-Control", "public, max-age=600", "Date", httpDate(t2), "Content-Length", "4",
				"Content-Encoding", "gzip", "X-New", "added", "X-Old", "kept", "Content-Type", "application/json", "Age", ""),
		},
		{
			name: "hop-by-hop ignored",
			h304: header("Connection", "X-Hop", "X-Hop", "1", "Transfer-Encoding", "chunked", "Keep-Alive", "timeout=5"),
			want: header("X-Hop", "", "Transfer-Encoding", "", "Keep-Alive", "", "Connection", ""),
		},
		{
			name: "missing Date becomes response time, old Age dropped",
			h304: header("Etag", `"p1"`),
			want: header("Date", httpDate(t2), "Age", ""),
		},
		{
			name: "new Age taken",
			h304: header("Age", "7", "Date", httpDate(t2)),
			want: header("Age", "7"),
		},
		{
			name: "shorter Vary does not replace the stored one",
			h304: header("Vary", "Accept-Encoding"),
			want: header("Vary", "Accept-Encoding, Accept"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge304(stored, tt.h304, t1, t2)
			for k, vs := range tt.want {
				if g := got.Header.Get(k); g != vs[0] {
					t.Errorf("Merge304(%v).Header[%q] = %q, want %q", tt.h304, k, g, vs[0])
				}
			}
			if string(got.Body) != "body" || got.Status != 200 {
				t.Errorf("Merge304(%v) = status %d body %q, want 200 %q", tt.h304, got.Status, got.Body, "body")
			}
			if !got.RequestTime.Equal(t1) || !got.ResponseTime.Equal(t2) {
				t.Errorf("Merge304(%v) times = %v, %v, want %v, %v", tt.h304, got.RequestTime, got.ResponseTime, t1, t2)
			}
			if !slices.Equal(got.Vary, stored.Vary) || !slices.Equal(got.VaryValues, stored.VaryValues) {
				t.Errorf("Merge304(%v) Vary = %q %q, want %q %q", tt.h304, got.Vary, got.VaryValues, stored.Vary, stored.VaryValues)
			}
			if !equalHeader(stored.Header, before) || !stored.ResponseTime.Equal(t0) {
				t.Errorf("Merge304(%v) modified the stored entry: %v", tt.h304, stored.Header)
			}
		})
	}

	// A merged entry is fresh again from the 304's arrival: its age is the
	// 1 s response delay plus the time since.
	got := Merge304(stored, header("Date", httpDate(t2)), t1, t2)
	if f, age := Check(newRequest(t, "GET", "http://example.com/x"), got, t2.Add(time.Minute)); f != Fresh || age != 61*time.Second {
		t.Errorf("Check(merged) = %v, %v, want %v, %v", f, age, Fresh, 61*time.Second)
	}
}

func TestNotModified(t *testing.T) {
	lm := t0.Add(-time.Hour)
	e := entry("Etag", `"v1"`, "Last-Modified", httpDate(lm), "Date", httpDate(t0))
	weak := entry("Etag", `W/"v1"`)
	get := func(kv ...string) *http.Request { return newRequest(t, "GET", "http://example.com/x", kv...) }
	tests := []struct {
		name string
		req  *http.Request
		e    *Entry
		want bool
	}{
		{"no conditionals", get(), e, false},
		{"strong etag", get("If-None-Match", `"v1"`), e, true},
		{"HEAD", newRequest(t, "HEAD", "http://example.com/x", "If-None-Match", `"v1"`), e, true},
		{"POST never", newRequest(t, "POST", "http://example.com/x", "If-None-Match", `"v1"`), e, false},
		{"weak request tag", get("If-None-Match", `W/"v1"`), e, true},
		{"weak stored tag", get("If-None-Match", `"v1"`), weak, true},
		{"other tag", get("If-None-Match", `"v2"`), e, false},
		{"list", get("If-None-Match", `"v0", W/"v1" , "v2"`), e, true},
		{"list over lines", get("If-None-Match", `"v0"`, "If-None-Match", `"v1"`), e, true},
		{"tag with comma", get("If-None-Match", `"a,b"`), entry("Etag", `"a,b"`), true},
		{"star", get("If-None-Match", "*"), e, true},
		{"star without etag", get("If-None-Match", "*"), entry(), true},
		{"no stored etag", get("If-None-Match", `"v1"`), entry("Last-Modified", httpDate(lm)), false},
		{"If-None-Match takes precedence", get("If-None-Match", `"v2"`, "If-Modified-Since", httpDate(t0)), e, false},
		{"If-Modified-Since equal", get("If-Modified-Since", httpDate(lm)), e, true},
		{"If-Modified-Since later", get("If-Modified-Since", httpDate(t0)), e, true},
		{"If-Modified-Since earlier", get("If-Modified-Since", httpDate(lm.Add(-time.Second))), e, false},
		{"If-Modified-Since invalid", get("If-Modified-Since", "yesterday"), e, false},
		{"If-Modified-Since against Date", get("If-Modified-Since", httpDate(t0)), entry("Date", httpDate(t0)), true},
		{"If-Modified-Since before Date", get("If-Modified-Since", httpDate(lm)), entry("Date", httpDate(t0)), false},
		{"stored 404 never", get("If-None-Match", "*"), &Entry{Status: 404, Header: header("Etag", `"v1"`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotModified(tt.req, tt.e); got != tt.want {
				t.Errorf("NotModified(%s) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestNotModifiedHeaders(t *testing.T) {
	e := entry(
		"Cache-Control", "public, max-age=300",
		"Content-Location", "/x.json",
		"Content-Type", "application/json",
		"Content-Length", "4",
		"Date", httpDate(t0),
		"Etag", `"v1"`,
		"Expires", httpDate(t0.Add(time.Hour)),
		"Last-Modified", httpDate(t0.Add(-time.Hour)),
		"Vary", "Accept",
		"Vary", "Accept-Encoding",
		"Set-Cookie", "a=b",
	)
	want := header(
		"Cache-Control", "public, max-age=300",
		"Content-Location", "/x.json",
		"Date", httpDate(t0),
		"Etag", `"v1"`,
		"Expires", httpDate(t0.Add(time.Hour)),
		"Last-Modified", httpDate(t0.Add(-time.Hour)),
		"Vary", "Accept",
		"Vary", "Accept-Encoding",
	)
	tests := []struct {
		name string
		e    *Entry
		want http.Header
	}{
		{"full", e, want},
		{"empty", entry(), header()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotModifiedHeaders(tt.e); !equalHeader(got, tt.want) {
				t.Errorf("NotModifiedHeaders(%v) = %v, want %v", tt.e.Header, got, tt.want)
			}
		})
	}
}

func TestInvalidatedURLs(t *testing.T) {
	const target = "http://Example.com:80/a/b?x=1"
	tests := []struct {
		name   string
		method string
		status int
		h      http.Header
		want   []string
	}{
		{"GET never", "GET", 200, header("Location", "/c"), nil},
		{"HEAD never", "HEAD", 200, header(), nil},
		{"OPTIONS never", "OPTIONS", 200, header(), nil},
		{"POST 200", "POST", 200, header(), []string{"http://example.com/a/b?x=1"}},
		{"DELETE 204", "DELETE", 204, header(), []string{"http://example.com/a/b?x=1"}},
		{"PUT 303", "PUT", 303, header(), []string{"http://example.com/a/b?x=1"}},
		{"POST 404", "POST", 404, header(), nil},
		{"POST 500", "POST", 500, header(), nil},
		{"POST 100", "POST", 100, header(), nil},
		{
			name: "relative Location and Content-Location", method: "POST", status: 201,
			h:    header("Location", "c", "Content-Location", "/d#frag"),
			want: []string{"http://example.com/a/b?x=1", "http://example.com/a/c", "http://example.com/d"},
		},
		{
			name: "absolute same origin", method: "PUT", status: 200,
			h:    header("Location", "HTTP://EXAMPLE.com:80/e"),
			want: []string{"http://example.com/a/b?x=1", "http://example.com/e"},
		},
		{
			name: "other host ignored", method: "POST", status: 302,
			h:    header("Location", "http://evil.example/a", "Content-Location", "//other.example/b"),
			want: []string{"http://example.com/a/b?x=1"},
		},
		{
			name: "other port ignored", method: "POST", status: 302,
			h:    header("Location", "http://example.com:8080/a"),
			want: []string{"http://example.com/a/b?x=1"},
		},
		{
			name: "other scheme ignored", method: "POST", status: 302,
			h:    header("Location", "https://example.com/a"),
			want: []string{"http://example.com/a/b?x=1"},
		},
		{
			name: "duplicates removed", method: "POST", status: 200,
			h:    header("Location", "/a/b?x=1", "Content-Location", "b?x=1"),
			want: []string{"http://example.com/a/b?x=1"},
		},
		{
			name: "unparsable Location ignored", method: "POST", status: 200,
			h:    header("Location", "http://[::1/x"),
			want: []string{"http://example.com/a/b?x=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, tt.method, target)
			if got := InvalidatedURLs(req, tt.status, tt.h); !slices.Equal(got, tt.want) {
				t.Errorf("InvalidatedURLs(%s %d %v) = %q, want %q", tt.method, tt.status, tt.h, got, tt.want)
			}
		})
	}
}
