package cache

import (
	"net/http"
	"testing"
	"time"
)

// TestPreparedCheckAgrees: the shortcut Check takes for a prepared entry
// gives the same answer and age as the full computation.
func TestPreparedCheckAgrees(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	date := t0.Format(http.TimeFormat)
	headers := map[string]http.Header{
		"max-age":        {"Cache-Control": {"max-age=300, public"}, "Date": {date}},
		"age on arrival": {"Cache-Control": {"max-age=600"}, "Date": {date}, "Age": {"700"}},
		"expires":        {"Expires": {t0.Add(time.Hour).Format(http.TimeFormat)}, "Date": {date}},
		"heuristic":      {"Last-Modified": {t0.Add(-100 * time.Hour).Format(http.TimeFormat)}, "Date": {date}},
		"no-cache":       {"Cache-Control": {"no-cache, max-age=600"}, "Date": {date}},
		"nothing":        {"Date": {date}},
	}
	reqs := map[string]http.Header{
		"plain":     {},
		"max-age=0": {"Cache-Control": {"max-age=0"}},
		"pragma":    {"Pragma": {"no-cache"}},
		"max-stale": {"Cache-Control": {"max-stale"}},
	}
	for hname, h := range headers {
		for rname, rh := range reqs {
			for _, after := range []time.Duration{-time.Second, 0, 299 * time.Second, 301 * time.Second, 3 * time.Hour, 20 * time.Hour} {
				plain := &Entry{Status: 200, Header: h, RequestTime: t0.Add(-time.Second), ResponseTime: t0}
				prepared := &Entry{Status: 200, Header: h, RequestTime: t0.Add(-time.Second), ResponseTime: t0}
				prepared.Prepare()
				req := &http.Request{Method: http.MethodGet, Header: rh}
				f1, a1 := Check(req, plain, t0.Add(after))
				f2, a2 := Check(req, prepared, t0.Add(after))
				if f1 != f2 || a1 != a2 {
					t.Errorf("%s, request %s, +%v: prepared Check = %v %v, unprepared %v %v", hname, rname, after, f2, a2, f1, a1)
				}
			}
		}
	}
}
