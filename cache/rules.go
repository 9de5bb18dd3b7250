package cache

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The rules of RFC 9111 for a shared cache, as pure functions of headers and
// clock values: nothing here reads the clock or does I/O.

// maxDelta is the value a delta-seconds too large to represent is taken as
// (RFC 9111 §1.2.2: 2^31 seconds).
const maxDelta = (1 << 31) * time.Second

// heuristicCap bounds a heuristic freshness lifetime. RFC 9111 §4.2.2
// suggests 10% of the time since Last-Modified; the cap keeps an old file
// from being served unvalidated for months.
const heuristicCap = 24 * time.Hour

// CacheControl is a parsed Cache-Control header (RFC 9111 §5.2): lower-case
// directive name → value ("" when none, quotes removed). When a directive
// appears more than once the first occurrence wins (RFC 9111 §4.2.1).
type CacheControl map[string]string

// ParseCacheControl parses all the Cache-Control field lines of h. It is
// tolerant of junk: empty members are skipped, whitespace around names,
// "=" and values is ignored, commas inside quoted strings do not split, and
// an unterminated quoted string runs to the end of the line.
func ParseCacheControl(h http.Header) CacheControl {
	cc := CacheControl{}
	for _, line := range h.Values("Cache-Control") {
		for len(line) > 0 {
			var name, value string
			name, line = cutAny(line, ",=")
			name = strings.ToLower(strings.TrimSpace(name))
			if len(line) > 0 && line[0] == '=' {
				value, line = parseValue(line[1:])
			}
			if len(line) > 0 && line[0] == ',' {
				line = line[1:]
			}
			if name == "" {
				continue
			}
			if _, dup := cc[name]; !dup {
				cc[name] = value
			}
		}
	}
	return cc
}

// cutAny splits s before the first byte in seps.
func cutAny(s, seps string) (before, rest string) {
	if i := strings.IndexAny(s, seps); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// parseValue reads a token or a quoted-string (RFC 9110 §5.6.4, with
// backslash escapes) from s, returning the value and the rest of s from the
// next comma on (anything between the value and that comma is dropped).
func parseValue(s string) (value, rest string) {
	s = strings.TrimLeft(s, " \t")
	if !strings.HasPrefix(s, `"`) {
		value, rest = cutAny(s, ",")
		return strings.TrimSpace(value), rest
	}
	var b strings.Builder
	i := 1
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			b.WriteByte(s[i])
			continue
		}
		if c == '"' {
			i++
			break
		}
		b.WriteByte(c)
	}
	_, rest = cutAny(s[i:], ",")
	return b.String(), rest
}

// Has reports whether directive name is present, with or without a value.
func (cc CacheControl) Has(name string) bool {
	_, ok := cc[name]
	return ok
}

// Seconds returns the delta-seconds value of directive name (RFC 9111
// §1.2.2). It reports false when the directive is missing or its value is
// not a non-negative decimal integer. Values too large saturate at 2^31 s.
func (cc CacheControl) Seconds(name string) (time.Duration, bool) {
	v, ok := cc[name]
	if !ok {
		return 0, false
	}
	return parseDelta(v)
}

// MaxAge is the Age a cache sends when an age it received, or computed,
// overflows (RFC 9111 §5.1): 2^31 seconds.
const MaxAge = maxDelta

// ClampAge replaces an Age value in h that overflows with 2147483648, as a
// cache forwarding it must (RFC 9111 §5.1).
func ClampAge(h http.Header) {
	if vs := h["Age"]; len(vs) == 1 {
		if d, ok := parseDelta(strings.TrimSpace(vs[0])); ok && d >= maxDelta {
			h["Age"] = []string{strconv.FormatInt(int64(maxDelta/time.Second), 10)}
		}
	}
}

// parseDelta parses delta-seconds = 1*DIGIT (RFC 9111 §1.2.2).
func parseDelta(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n >= 1<<31 { // err can only be a range error here
		return maxDelta, true
	}
	return time.Duration(n) * time.Second, true
}

// heuristicallyCacheable lists the status codes RFC 9110 §15.1 defines as
// heuristically cacheable.
var heuristicallyCacheable = map[int]bool{
	200: true, 203: true, 204: true, 206: true, 300: true, 301: true,
	308: true, 404: true, 405: true, 410: true, 414: true, 501: true,
}

// Storable reports whether a shared cache may store the response to req
// (RFC 9111 §3, §3.5). Only responses to GET are stored (HEAD is answered
// from them).
//
// A response is not storable when it is not final or is a 206 or 304 (we do
// not store partial content, §3.3, and a 304 only updates a stored response,
// §4.3.4); when the request or response has no-store (§5.2.1.5, §5.2.2.5);
// when the response has private, qualified or not (§5.2.2.7: we do not strip
// the named fields, we refuse); when it has must-understand and a status we
// do not know the caching rules of (§5.2.2.3: we always honour no-store, as
// is conservative); when it has Vary: * (§4.1, it could never be selected);
// when the request has Authorization and the response lacks public,
// must-revalidate and s-maxage (§3.5). Finally it needs explicit freshness
// (Expires, max-age, s-maxage), public, or a heuristically cacheable status
// (§3); a no-cache response with a validator is covered by the same rule.
func Storable(req *http.Request, status int, respHeader http.Header) bool {
	if req.Method != http.MethodGet {
		return false
	}
	if status < 200 || status > 599 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false
	}
	reqCC, cc := ParseCacheControl(req.Header), ParseCacheControl(respHeader)
	if reqCC.Has("no-store") || cc.Has("no-store") || cc.Has("private") {
		return false
	}
	if cc.Has("must-understand") && !heuristicallyCacheable[status] {
		return false
	}
	if _, star := VaryNames(respHeader); star {
		return false
	}
	public := cc.Has("public")
	if req.Header.Get("Authorization") != "" && !public && !cc.Has("must-revalidate") && !cc.Has("s-maxage") {
		return false
	}
	explicit := cc.Has("max-age") || cc.Has("s-maxage") || len(respHeader.Values("Expires")) > 0
	return explicit || public || heuristicallyCacheable[status]
}

// FreshnessLifetime is the freshness lifetime of a response (RFC 9111
// §4.2.1): s-maxage (we are a shared cache), then max-age, then Expires
// minus Date, then a heuristic. A present but invalid s-maxage or max-age,
// or an invalid Expires (e.g. "0"), gives 0: already stale (§4.2.1, §5.3).
// A missing or invalid Date is taken as responseTime, the moment we received
// the response (RFC 9110 §6.6.1).
//
// The heuristic (§4.2.2) applies only to heuristically cacheable statuses
// (RFC 9110 §15.1): 10% of the time between Last-Modified and Date, at most
// 24 hours. Without Last-Modified the lifetime is 0.
func FreshnessLifetime(status int, h http.Header, responseTime time.Time) time.Duration {
	cc := ParseCacheControl(h)
	for _, name := range []string{"s-maxage", "max-age"} {
		if cc.Has(name) {
			d, _ := cc.Seconds(name) // invalid: 0, stale
			return d
		}
	}
	date := dateOf(h, responseTime)
	if vs := h.Values("Expires"); len(vs) > 0 {
		exp, err := http.ParseTime(vs[0])
		if err != nil || !exp.After(date) {
			return 0
		}
		return min(exp.Sub(date), maxDelta)
	}
	if !heuristicallyCacheable[status] {
		return 0
	}
	lm, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil || !lm.Before(date) {
		return 0
	}
	return min(date.Sub(lm)/10, heuristicCap)
}

// dateOf is the response's Date, or fallback when it has none or an invalid
// one.
func dateOf(h http.Header, fallback time.Time) time.Time {
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		return d
	}
	return fallback
}

// CurrentAge is the current age of a stored response (RFC 9111 §4.2.3):
//
//	apparent_age = max(0, response_time - date_value)
//	response_delay = response_time - request_time
//	corrected_age_value = age_value + response_delay
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//	resident_time = now - response_time
//	current_age = corrected_initial_age + resident_time
//
// A missing or invalid Age counts as 0, a missing Date as responseTime. A
// clock that went backwards never makes an age negative.
func CurrentAge(h http.Header, requestTime, responseTime, now time.Time) time.Duration {
	apparent := max(0, responseTime.Sub(dateOf(h, responseTime)))
	var ageValue time.Duration
	if vs := h.Values("Age"); len(vs) > 0 {
		ageValue, _ = parseDelta(strings.TrimSpace(vs[0]))
	}
	delay := max(0, responseTime.Sub(requestTime))
	corrected := max(apparent, ageValue+delay)
	resident := max(0, now.Sub(responseTime))
	return corrected + resident
}

// Freshness is the outcome of Check.
type Freshness int

const (
	// Fresh means the entry may be served without contacting the origin.
	Fresh Freshness = iota
	// Stale means the entry must be validated (or refetched) first.
	Stale
)

// String returns "fresh" or "stale".
func (f Freshness) String() string {
	switch f {
	case Fresh:
		return "fresh"
	case Stale:
		return "stale"
	}
	return "Freshness(" + strconv.Itoa(int(f)) + ")"
}

// requestNoCache reports whether the request asks for validation: no-cache
// (RFC 9111 §5.2.1.4), or Pragma: no-cache in a request with no
// Cache-Control field (§5.4).
func requestNoCache(req *http.Request, reqCC CacheControl) bool {
	if reqCC.Has("no-cache") {
		return true
	}
	if len(req.Header.Values("Cache-Control")) > 0 {
		return false
	}
	for _, line := range req.Header.Values("Pragma") {
		for p := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "no-cache") {
				return true
			}
		}
	}
	return false
}

// mayServeStale reports whether the response's directives allow serving it
// stale at all (RFC 9111 §4.2.4): not with no-cache (§5.2.2.4),
// must-revalidate (§5.2.2.2), proxy-revalidate (§5.2.2.8) or s-maxage, which
// implies proxy-revalidate for a shared cache (§5.2.2.10).
func mayServeStale(cc CacheControl) bool {
	return !cc.Has("no-cache") && !cc.Has("must-revalidate") && !cc.Has("proxy-revalidate") && !cc.Has("s-maxage")
}

// Check decides whether e may answer req at now without contacting the
// origin (RFC 9111 §4.2), and returns e's current age for the Age header
// (§5.1).
//
// A response with no-cache, qualified or not, is always Stale (§5.2.2.4: we
// do not strip the named fields). Of the request directives (§5.2.1):
// no-cache (or Pragma: no-cache without Cache-Control, §5.4) makes it Stale;
// max-age=N makes it Stale when the age exceeds N, and max-age=0 always does
// (pip sends it to force revalidation of index pages, pypa/pip#5670; an
// invalid value counts as 0); min-fresh=N requires N of freshness left;
// max-stale[=N] allows serving a stale entry (stale by at most N) unless the
// response forbids it (see mayServeStale). immutable (RFC 8246) does not
// override request directives: it is advice to clients, not to caches.
func Check(req *http.Request, e *Entry, now time.Time) (Freshness, time.Duration) {
	if e.prepared && len(req.Header["Cache-Control"]) == 0 && len(req.Header["Pragma"]) == 0 {
		// The common case of a hit: no request directives, and the
		// response's own read once by Prepare. current_age is
		// corrected_initial_age + resident_time (§4.2.3).
		age := e.initialAge + max(0, now.Sub(e.ResponseTime))
		if !e.noCache && e.lifetime > age {
			return Fresh, age
		}
		return Stale, age
	}
	age := CurrentAge(e.Header, e.RequestTime, e.ResponseTime, now)
	lifetime := FreshnessLifetime(e.Status, e.Header, e.ResponseTime)
	cc, reqCC := ParseCacheControl(e.Header), ParseCacheControl(req.Header)

	if cc.Has("no-cache") || requestNoCache(req, reqCC) {
		return Stale, age
	}
	if reqCC.Has("max-age") {
		if n, _ := reqCC.Seconds("max-age"); n == 0 || age > n {
			return Stale, age
		}
	}
	if n, ok := reqCC.Seconds("min-fresh"); ok && lifetime-age < n {
		return Stale, age
	}
	if lifetime > age { // §4.2: fresh when freshness_lifetime > current_age
		return Fresh, age
	}
	if reqCC.Has("max-stale") && mayServeStale(cc) {
		if reqCC["max-stale"] == "" {
			return Fresh, age // any staleness
		}
		if n, ok := reqCC.Seconds("max-stale"); ok && age-lifetime <= n {
			return Fresh, age
		}
	}
	return Stale, age
}

// StaleIfError reports whether stale e may be served at now because the
// origin failed (a connection error or a 5xx), as RFC 9111 §4.2.4 allows a
// disconnected cache to, when:
//
//   - the request has stale-if-error=N (RFC 5861 §4) and e is stale by at
//     most N: the client's own tolerance, which takes precedence over the
//     response's;
//   - otherwise the response has stale-if-error=N and e is stale by at most
//     N, and the request has no no-cache (or Pragma: no-cache): a client
//     that asked for a validated response gets the origin's error rather
//     than the origin's blanket permission;
//   - or relaxed is true: the operator's switch, like Polipo's
//     relaxTransparency=maybe, which overrides request directives (an
//     "npm --prefer-online" build then survives a registry outage).
//
// Never when the response forbids serving it stale: no-cache,
// must-revalidate, proxy-revalidate or s-maxage (§4.2.4, see mayServeStale).
func StaleIfError(req *http.Request, e *Entry, now time.Time, relaxed bool) bool {
	cc := ParseCacheControl(e.Header)
	if !mayServeStale(cc) {
		return false
	}
	if relaxed {
		return true
	}
	age := CurrentAge(e.Header, e.RequestTime, e.ResponseTime, now)
	staleness := age - FreshnessLifetime(e.Status, e.Header, e.ResponseTime)
	reqCC := ParseCacheControl(req.Header)
	if reqCC.Has("stale-if-error") {
		n, ok := reqCC.Seconds("stale-if-error")
		return ok && staleness <= n
	}
	if requestNoCache(req, reqCC) {
		return false
	}
	n, ok := cc.Seconds("stale-if-error")
	return ok && staleness <= n
}

// InvalidatedURLs returns the primary keys a response to an unsafe request
// invalidates (RFC 9111 §4.4): when the method is not safe (RFC 9110 §9.2.1:
// anything but GET, HEAD, OPTIONS and TRACE) and the status is 2xx or 3xx,
// the target URL, and the URLs in Location and Content-Location (resolved
// against the target) when they have the same origin (scheme, host and
// port). Nil otherwise. Keys are not repeated.
func InvalidatedURLs(req *http.Request, status int, respHeader http.Header) []string {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return nil
	}
	if status < 200 || status > 399 {
		return nil
	}
	target := targetURL(req)
	keys := []string{PrimaryKeyURL(target)}
	origin := originOf(target)
	for _, field := range []string{"Location", "Content-Location"} {
		v := respHeader.Get(field)
		if v == "" {
			continue
		}
		ref, err := url.Parse(v)
		if err != nil {
			continue
		}
		u := target.ResolveReference(ref)
		if originOf(u) != origin {
			continue
		}
		if k := PrimaryKeyURL(u); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// originOf is u's normalised scheme://host[:port] (RFC 9110 §4.3.1).
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	return scheme + "://" + canonicalHost(scheme, u.Host)
}
