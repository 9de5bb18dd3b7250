package cache

// Validation (RFC 9111 §4.3): revalidating a stored response with the
// origin, merging a 304 into it, and answering a client's own conditional
// request from it.

import (
	"net/http"
	"strings"
	"time"
)

// AddValidators sets the validators of e on h, the header of a request that
// revalidates e (RFC 9111 §4.3.1): If-None-Match from its ETag and
// If-Modified-Since from its Last-Modified. Both are sent when both exist;
// the origin gives If-None-Match precedence (RFC 9110 §13.2.2).
func AddValidators(h http.Header, e *Entry) {
	if etag := e.Header.Get("Etag"); etag != "" {
		h.Set("If-None-Match", etag)
	}
	if lm := e.Header.Get("Last-Modified"); lm != "" {
		h.Set("If-Modified-Since", lm)
	}
}

// hopByHop are the hop-by-hop fields of RFC 9110 §7.6.1 (plus the
// non-standard Proxy-Connection and Keep-Alive), never stored (RFC 9111
// §3.1).
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// keptOn304 are the fields of the stored response a 304 does not replace
// (RFC 9111 §3.2): Content-Length (named by §3.2); Content-Encoding, because
// the stored body is encoded as the stored field says (§3.2 "would be
// destructive"); Vary, because the stored response's secondary key depends
// on it and some origins send 304s with a shorter Vary (npm/cli#3656).
var keptOn304 = []string{"Content-Length", "Content-Encoding", "Vary"}

// SelectedBy304 reports whether a 304 with header h304 identifies e for
// update (RFC 9111 §4.3.4). A 304 that carries a strong ETag selects only
// a stored response with that same strong ETag; one that carries only a
// weak ETag selects a response whose ETag matches it weakly. A 304 without
// an ETag (an origin answering If-Modified-Since) selects e, the one
// response we asked about. Otherwise the origin is describing some other
// representation than the one stored, and e must not be updated from it:
// merging would serve the old body under the new validator.
func SelectedBy304(e *Entry, h304 http.Header) bool {
	tag := strings.TrimSpace(h304.Get("Etag"))
	if tag == "" {
		return true
	}
	stored := strings.TrimSpace(e.Header.Get("Etag"))
	if stored == "" {
		return false
	}
	if !strings.HasPrefix(tag, "W/") {
		return tag == stored // strong comparison (RFC 9110 §8.8.3.2)
	}
	return weakMatch(tag, stored)
}

// Merge304 returns a new Entry: e with its header updated from the header of
// a 304 that validated it (RFC 9111 §4.3.4, §3.2), and the times of that
// exchange. Every field of the 304 replaces the stored one, except
// hop-by-hop fields (and those named by its Connection), and the fields in
// keptOn304. A stored Date or Age the 304 does not replace would describe
// the old response and make the new one look old: Date becomes
// responseTime (RFC 9110 §6.6.1) and Age is dropped.
//
// e is not modified. The new Entry shares e's Body, which is immutable.
func Merge304(e *Entry, h304 http.Header, requestTime, responseTime time.Time) *Entry {
	skip := map[string]bool{}
	for _, k := range hopByHop {
		skip[k] = true
	}
	for _, k := range keptOn304 {
		skip[k] = true
	}
	for _, line := range h304.Values("Connection") {
		for k := range strings.SplitSeq(line, ",") {
			skip[http.CanonicalHeaderKey(strings.TrimSpace(k))] = true
		}
	}

	h := e.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Del("Age")
	h.Set("Date", responseTime.UTC().Format(http.TimeFormat))
	for k, vs := range h304 {
		k = http.CanonicalHeaderKey(k)
		if !skip[k] {
			h[k] = append([]string(nil), vs...)
		}
	}
	n := *e
	n.Header = h
	n.RequestTime, n.ResponseTime = requestTime, responseTime
	return &n
}

// NotModified reports whether the client's own conditional GET or HEAD can
// be answered with a 304 built from e (RFC 9111 §4.3.2). Preconditions are
// evaluated only when e is a 2xx (RFC 9110 §13.2.1). If-None-Match, when
// present, decides alone (RFC 9110 §13.2.2): "*" or a member weakly equal to
// e's ETag (§8.8.3.2) matches. Otherwise If-Modified-Since (§13.1.3), when
// a valid date, matches when e's Last-Modified (or, lacking that, its Date,
// or lacking that, its ResponseTime: RFC 9111 §4.3.2) is not later.
func NotModified(req *http.Request, e *Entry) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if e.Status < 200 || e.Status > 299 {
		return false
	}
	if inm := req.Header.Values("If-None-Match"); len(inm) > 0 {
		etag := e.Header.Get("Etag")
		for _, line := range inm {
			for _, tag := range splitETags(line) {
				if tag == "*" || (etag != "" && weakMatch(tag, etag)) {
					return true
				}
			}
		}
		return false
	}
	imsValue := req.Header.Get("If-Modified-Since")
	if imsValue == "" {
		return false // the common case; http.ParseTime("") costs three failed parses
	}
	ims, err := http.ParseTime(imsValue)
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(e.Header.Get("Last-Modified"))
	if err != nil {
		lm = dateOf(e.Header, e.ResponseTime)
	}
	return !lm.After(ims)
}

// splitETags splits an If-None-Match value into its members. Entity tags
// may contain commas inside their quotes (RFC 9110 §8.8.3), so it does not
// split there.
func splitETags(s string) []string {
	var tags []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				if t := strings.TrimSpace(s[start:i]); t != "" {
					tags = append(tags, t)
				}
				start = i + 1
			}
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		tags = append(tags, t)
	}
	return tags
}

// weakMatch is the weak comparison of two entity tags (RFC 9110 §8.8.3.2):
// equal opaque-tags, whether either is weak or not.
func weakMatch(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// notModifiedFields are the fields a 304 carries from the stored response
// (RFC 9110 §15.4.5, Last-Modified included as a useful validator).
var notModifiedFields = []string{
	"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Last-Modified", "Vary",
}

// NotModifiedHeaders returns the header of a 304 built from e
// (RFC 9110 §15.4.5). The caller adds Age.
func NotModifiedHeaders(e *Entry) http.Header {
	h := http.Header{}
	for _, k := range notModifiedFields {
		if vs := e.Header.Values(k); len(vs) > 0 {
			h[k] = append([]string(nil), vs...)
		}
	}
	return h
}
