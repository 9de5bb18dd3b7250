package cache

import (
	"net/http"
	"time"
)

// Entry is one stored response. Entries are immutable once handed to
// Cache.Set: to change one (a 304 merging new headers), build a new Entry and
// Set it again under the same key.
type Entry struct {
	// Status is the response's status code.
	Status int
	// Header holds the end-to-end response headers as stored (hop-by-hop
	// headers already removed, RFC 9111 §3.1).
	Header http.Header
	// Body is the complete response body.
	Body []byte
	// RequestTime and ResponseTime are the local clock values when the
	// request that produced this response was sent and when its headers
	// arrived (RFC 9111 §4.2.3 request_time and response_time).
	RequestTime, ResponseTime time.Time
	// Vary lists the request header names of the response's Vary header,
	// canonicalised; nil when the response has no Vary.
	Vary []string
	// VaryValues holds the normalised values of the request headers named
	// in Vary, in the same order, as they were on the request that produced
	// this entry (RFC 9111 §4.1).
	VaryValues []string
	// VaryID is set on a Vary marker: the entry stored under a URL's
	// primary key when its responses vary (Status 0, no body). Its
	// variants are stored under keys derived from VaryID, so replacing or
	// invalidating the marker orphans every old variant at once.
	VaryID string

	// Set by Prepare, so that a hit does not parse the same headers again.
	prepared   bool
	initialAge time.Duration // corrected_initial_age (RFC 9111 §4.2.3)
	lifetime   time.Duration // freshness_lifetime (§4.2.1)
	noCache    bool          // the response says no-cache: always validate
}

// Prepare computes once what every freshness check of e needs from its
// headers. Call it before handing e to Cache.Set; Check works without it,
// only slower.
func (e *Entry) Prepare() {
	if e.prepared {
		return
	}
	e.initialAge = CurrentAge(e.Header, e.RequestTime, e.ResponseTime, e.ResponseTime)
	e.lifetime = FreshnessLifetime(e.Status, e.Header, e.ResponseTime)
	e.noCache = ParseCacheControl(e.Header).Has("no-cache")
	e.prepared = true
}

// IsVaryMarker reports whether e is a Vary marker rather than a response.
func (e *Entry) IsVaryMarker() bool { return e.Status == 0 }

// Cost is what the entry counts against the cache size: the key, the header
// bytes as they would go on the wire, and the body.
func (e *Entry) Cost(key string) int64 {
	n := int64(len(key) + len(e.Body) + 64)
	for k, vs := range e.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	for i := range e.Vary {
		n += int64(len(e.Vary[i]))
	}
	for i := range e.VaryValues {
		n += int64(len(e.VaryValues[i]))
	}
	return n
}
