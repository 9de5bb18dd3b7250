package cache

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// PrimaryKey is the cache key of req's target (RFC 9111 §2: the primary
// cache key is the target URI): the absolute URL with scheme and host
// lower-cased, the default port (80 for http, 443 for https) removed, an
// empty path made "/", the fragment dropped; the query is kept byte for byte.
// GET and HEAD share it, so a HEAD can be answered from a stored GET
// (RFC 9110 §9.3.2).
//
// Proxy requests carry an absolute URL. When req.URL.Host is empty (an
// origin-form request), the host comes from req.Host and the scheme is http,
// or https when the request arrived over TLS (an intercepted tunnel).
func PrimaryKey(req *http.Request) string {
	return PrimaryKeyURL(targetURL(req))
}

// targetURL is a copy of req.URL made absolute as PrimaryKey describes.
func targetURL(req *http.Request) *url.URL {
	u := *req.URL
	if u.Host == "" {
		u.Host = req.Host
		if u.Scheme == "" {
			u.Scheme = "http"
			if req.TLS != nil {
				u.Scheme = "https"
			}
		}
	}
	return &u
}

// PrimaryKeyURL is PrimaryKey for a URL. The user information is dropped:
// it does not identify the resource (RFC 9110 §4.2.4 deprecates it).
func PrimaryKeyURL(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(canonicalHost(scheme, u.Host))
	path := u.EscapedPath()
	if u.Opaque != "" {
		path = u.Opaque
	}
	if path == "" {
		path = "/" // RFC 9110 §4.2.3: an empty path is equivalent to "/".
	}
	b.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	return b.String()
}

// canonicalHost lower-cases host and removes the scheme's default port
// (RFC 9110 §4.2.3 normalisation).
func canonicalHost(scheme, host string) string {
	host = strings.ToLower(host)
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host // no port (or junk we keep as is)
	}
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		if strings.Contains(h, ":") {
			return "[" + h + "]" // IPv6 literal
		}
		return h
	}
	return host
}

// VaryNames parses the Vary header(s) of a response (RFC 9110 §12.5.5):
// canonical header names, sorted and deduplicated. star is true when one of
// the members is "*", which means no request can be matched (RFC 9111 §4.1).
func VaryNames(h http.Header) (names []string, star bool) {
	for _, line := range h.Values("Vary") {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.TrimSpace(name)
			switch name {
			case "":
				continue
			case "*":
				star = true
				continue
			}
			names = append(names, http.CanonicalHeaderKey(name))
		}
	}
	slices.Sort(names)
	return slices.Compact(names), star
}

// VaryValues returns, for each name, the request's values normalised as
// RFC 9111 §4.1 allows: all field lines combined into one list, empty list
// members dropped, whitespace around the commas and at the ends removed, and
// the members joined with ", ". The order of members is kept: it can carry
// meaning. An absent header gives "".
func VaryValues(reqHeader http.Header, names []string) []string {
	if len(names) == 0 {
		return nil
	}
	values := make([]string, len(names))
	for i, name := range names {
		var members []string
		for _, line := range reqHeader.Values(name) {
			for m := range strings.SplitSeq(line, ",") {
				if m = strings.TrimSpace(m); m != "" {
					members = append(members, m)
				}
			}
		}
		values[i] = strings.Join(members, ", ")
	}
	return values
}

// VariantKey is the key of one variant of the resource at primary: primary,
// then each of values (from VaryValues), each preceded by "\x00". Header
// values cannot contain NUL, so different value lists give different keys.
// The key does not name the headers: MatchesVary must still confirm a hit.
func VariantKey(primary string, values []string) string {
	return primary + "\x00" + strings.Join(values, "\x00")
}

// MatchesVary reports whether a request with reqHeader selects e: the
// request's values of the headers in e.Vary, normalised, equal those of the
// request that produced e (RFC 9111 §4.1).
func (e *Entry) MatchesVary(reqHeader http.Header) bool {
	return slices.Equal(VaryValues(reqHeader, e.Vary), e.VaryValues)
}
