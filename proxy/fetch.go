package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/stageproxy/stageproxy/cache"
)

// cacheStatusName is the cache's name in Cache-Status (RFC 9211).
const cacheStatusName = "stageproxy"

const statusHit = cacheStatusName + "; hit"

// conditionalHeaders are the client's preconditions and range, removed from
// a fetch the cache makes on behalf of every reader (the cache answers them
// itself from the full response).
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

// errNoReaders stops a fill that is not being stored once every client
// reading it has gone.
var errNoReaders = errors.New("every client left")

// roundTrip is goproxy's per-request RoundTripper: it answers from the cache
// or fetches. It never returns an error the client has not caused: upstream
// failures become 502/504 responses here, so that goproxy's 500 is never
// sent (and so that the same happens inside intercepted tunnels later).
func (h *Handler) roundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	info := infoFrom(req.Context())
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return h.forward(req, info, cacheStatusName+"; fwd=method")
	}
	if req.Header.Get("Range") != "" {
		// Partial responses are not stored; pip's lazy wheel reads
		// (Range + no-cache) pass straight through.
		return h.forward(req, info, cacheStatusName+"; fwd=bypass; detail=range")
	}

	if !info.looked {
		if e, age := h.freshFromCache(req, info); e != nil {
			return h.entryResponse(req, e, age, statusHit, make(http.Header, len(e.Header)+4)), nil
		}
	}
	key, stored, fwd := info.key, info.stored, info.fwd
	if cache.ParseCacheControl(req.Header).Has("only-if-cached") {
		info.outcome = "miss"
		return errorResponse(req, http.StatusGatewayTimeout, "not in cache and the request said only-if-cached"), nil
	}
	if req.Method == http.MethodHead {
		// A HEAD that the cache cannot answer goes through as it is: its
		// response has no body to store, and it must neither join nor
		// start a fill that GETs read (nor drop their stored copy).
		return h.forward(req, info, cacheStatusName+"; fwd="+fwd)
	}
	if stored == nil {
		h.metrics.misses.Inc()
	} else {
		h.metrics.revalidations.Inc()
	}
	return h.fetchShared(req, info, key, stored, fwd)
}

// freshFromCache returns the fresh stored response that may answer a GET or
// HEAD, with its age; or nil after recording in info what the lookup found
// (the stale entry to revalidate, the kind of miss) for roundTrip to go on
// from.
func (h *Handler) freshFromCache(req *http.Request, info *reqInfo) (*cache.Entry, time.Duration) {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) || req.Header.Get("Range") != "" || !req.URL.IsAbs() {
		return nil, 0
	}
	info.looked = true
	info.key = cache.PrimaryKey(req)
	stored, fwd := h.lookup(req, info.key)
	info.stored, info.fwd = stored, fwd
	if stored == nil {
		return nil, 0
	}
	fresh, age := cache.Check(req, stored, h.now())
	if fresh == cache.Fresh {
		info.outcome, info.source = "hit", "cache"
		h.metrics.hits.Inc()
		return stored, age
	}
	info.fwd = "stale"
	_, cc := req.Header["Cache-Control"]
	_, pragma := req.Header["Pragma"]
	if (cc || pragma) && age < cache.FreshnessLifetime(stored.Status, stored.Header, stored.ResponseTime) {
		// Fresh, but the request's directives forbid using it. (Without
		// any, what forbids it is the response's own no-cache.)
		info.fwd = "request"
	}
	return nil, 0
}

// writeHit answers req from e directly on w, its headers built in place.
func (h *Handler) writeHit(w http.ResponseWriter, req *http.Request, e *cache.Entry, age time.Duration) {
	resp := h.entryResponse(req, e, age, statusHit, w.Header())
	w.WriteHeader(resp.StatusCode)
	if resp.Body != http.NoBody {
		io.Copy(w, resp.Body)
	}
}

// lookup finds the stored response for req, following a Vary marker to the
// variant that matches the request (RFC 9111 §4.1). fwd names the kind of
// miss for Cache-Status.
func (h *Handler) lookup(req *http.Request, key string) (e *cache.Entry, fwd string) {
	e, ok := h.cache.Get(key)
	if !ok {
		return nil, "uri-miss"
	}
	if !e.IsVaryMarker() {
		return e, ""
	}
	v, ok := h.cache.Get(variantKey(key, e, req.Header))
	if !ok {
		return nil, "vary-miss"
	}
	return v, ""
}

func variantKey(key string, marker *cache.Entry, reqHeader http.Header) string {
	return cache.VariantKey(key+"\x00"+marker.VaryID, cache.VaryValues(reqHeader, marker.Vary))
}

// store puts e under key, or under its variant key when the response varies.
// The error says why the cache did not take it.
func (h *Handler) store(key string, reqHeader http.Header, e *cache.Entry) error {
	e.Prepare()
	names, _ := cache.VaryNames(e.Header)
	if len(names) == 0 {
		return h.cache.Set(key, e)
	}
	marker, ok := h.cache.Get(key)
	if !ok || !marker.IsVaryMarker() || !slices.Equal(marker.Vary, names) {
		marker = &cache.Entry{Vary: names, VaryID: newVaryID()}
		if err := h.cache.Set(key, marker); err != nil {
			return err // a variant without its marker could never be found
		}
	}
	e.Vary = names
	e.VaryValues = cache.VaryValues(reqHeader, names)
	return h.cache.Set(variantKey(key, marker, reqHeader), e)
}

func newVaryID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// entryResponse serves a stored entry: a 304 when the client's own
// conditional request matches it (RFC 9111 §4.3.2), the entry otherwise.
// Its headers are built in hdr, which must be empty.
func (h *Handler) entryResponse(req *http.Request, e *cache.Entry, age time.Duration, status string, hdr http.Header) *http.Response {
	resp := &http.Response{
		StatusCode: e.Status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Request: req,
	}
	if cache.NotModified(req, e) {
		resp.StatusCode = http.StatusNotModified
		for k, v := range cache.NotModifiedHeaders(e) {
			hdr[k] = v
		}
		resp.Body = http.NoBody
	} else {
		// A shallow copy is enough: stored value slices are never
		// modified, only replaced in this map.
		for k, v := range e.Header {
			hdr[k] = v
		}
		hdr["Content-Length"] = []string{strconv.Itoa(len(e.Body))}
		resp.ContentLength = int64(len(e.Body))
		if req.Method == http.MethodHead {
			resp.Body = http.NoBody
		} else {
			resp.Body = io.NopCloser(bytes.NewReader(e.Body))
		}
	}
	hdr["Age"] = []string{strconv.FormatInt(int64(min(age, cache.MaxAge)/time.Second), 10)}
	hdr["Via"] = append(slices.Clip(e.Header["Via"]), viaValue)
	hdr["Cache-Status"] = append(slices.Clip(e.Header["Cache-Status"]), status)
	resp.Header = hdr
	resp.Status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	return resp
}

// forward sends req upstream as it is and streams the answer back, storing
// nothing. Unsafe methods invalidate what they may have changed (RFC 9111
// §4.4).
func (h *Handler) forward(req *http.Request, info *reqInfo, status string) (*http.Response, error) {
	info.outcome, info.source = "pass", "upstream"
	req.RequestURI = ""
	h.metrics.upstreamRequests.Inc()
	rt := h.route()
	resp, err := rt.roundTrip(req)
	if err != nil {
		return h.upstreamError(req, info, rt, err), nil
	}
	removeHopByHop(resp.Header)
	for _, k := range cache.InvalidatedURLs(req, resp.StatusCode, resp.Header) {
		h.cache.Delete(k)
	}
	resp.Header["Via"] = append(resp.Header["Via"], viaValue)
	resp.Header["Cache-Status"] = append(resp.Header["Cache-Status"], status+"; fwd-status="+strconv.Itoa(resp.StatusCode))
	return resp, nil
}

// upstreamError turns a failed fetch into the response the client gets.
func (h *Handler) upstreamError(req *http.Request, info *reqInfo, rt *route, err error) *http.Response {
	reason := errorReason(req.URL.Host, rt.parentFor(req), err)
	if req.Context().Err() != nil && errors.Is(err, context.Canceled) {
		info.outcome = "client-gone"
	} else {
		info.outcome = "error"
		h.metrics.upstreamErrors.Inc()
		// The client's one-line reason, which names the parent or the
		// origin, rather than Go's error chain ("proxyconnect tcp: …").
		h.log.Warn("upstream failed", "url", req.URL.Redacted(), "reason", reason)
	}
	return errorResponse(req, errorStatus(err), reason)
}

// fetchShared answers req through a flight for key: joining one under way
// or starting one. stale is the stored response to revalidate, if any.
func (h *Handler) fetchShared(req *http.Request, info *reqInfo, key string, stale *cache.Entry, fwd string) (*http.Response, error) {
	// A joiner that cannot use the flight it found (the response is not
	// shared, varies differently, is not fresh for it, or its start is
	// gone) tries again; the last attempt fetches on a flight of its own.
	const attempts = 3
	for i := 0; i < attempts; i++ {
		f, r := h.startOrJoin(req, key, stale, fwd, i < attempts-1)
		joined := r == nil
		select {
		case <-f.head:
		case <-req.Context().Done():
			if r != nil {
				r.Close()
			}
			info.outcome = "client-gone"
			return nil, req.Context().Err()
		}
		if r != nil && (f.err != nil || f.entry != nil || !f.shared) {
			r.Close() // the body, if any, does not come through the flight
		}
		if f.err != nil {
			return h.upstreamError(req, info, f.route, f.err), nil
		}
		status := f.cacheStatus
		if joined {
			status += "; collapsed"
		}
		if f.entry != nil {
			info.outcome, info.source = "revalidated", "cache"
			age := cache.CurrentAge(f.entry.Header, f.entry.RequestTime, f.entry.ResponseTime, h.now())
			return h.entryResponse(req, f.entry, age, status, make(http.Header, len(f.entry.Header)+4)), nil
		}
		if !f.shared {
			if joined {
				continue
			}
			info.outcome, info.source = "miss", "upstream"
			return h.streamResponse(req, f.resp, f.resp.Body, status), nil
		}
		if joined {
			if f.varyNames != nil && !slices.Equal(cache.VaryValues(req.Header, f.varyNames), f.varyValues) {
				continue
			}
			// Collapsing hands the joiner a response fetched for
			// someone else, exactly as a hit would: allowed only when
			// the stored copy could answer it now without validation
			// (RFC 9111 §4). Not for a response that is stale on
			// arrival (no-cache, max-age=0, no freshness at all), whose
			// Set-Cookie and content were meant for its requester, nor
			// when the joiner's own directives ask for validation
			// (pip's max-age=0).
			if fresh, _ := cache.Check(req, f.stored, h.now()); fresh != cache.Fresh {
				continue
			}
			if r = f.newReader(); r == nil {
				continue
			}
		}
		info.outcome, info.source = "miss", "upstream"
		if joined {
			info.outcome = "collapsed"
		}
		return h.streamResponse(req, f.resp, r, status), nil
	}
	panic("unreachable: the last attempt owns its flight")
}

// startOrJoin returns the flight under way for key, or starts one. When it
// starts one, it also returns the starter's reader, registered before the
// fill runs so that the fill never sees a flight without readers. When
// register is false the new flight is private to req.
func (h *Handler) startOrJoin(req *http.Request, key string, stale *cache.Entry, fwd string, register bool) (*flight, *flightReader) {
	hops := viaHops(req.Header)
	h.mu.Lock()
	if register {
		if f, ok := h.flights[key]; ok {
			if f.hops == hops {
				h.mu.Unlock()
				return f, nil
			}
			// A request that has been through more (or fewer) proxies
			// than the flight's own may be that very request come back
			// round a loop of parents: joining would wait on itself
			// until the header timeout. It fetches on its own, and
			// after maxViaHops rounds the loop gets its 508.
			register = false
		}
	}
	f := newFlight(key)
	f.hops = hops
	r := f.newReader()
	if register {
		h.flights[key] = f
	}
	h.mu.Unlock()
	h.metrics.upstreamRequests.Inc()
	h.fillSettled(req, f, stale, fwd, register)
	return f, r
}

// errFillPanicked is the error of a flight whose fill panicked before its
// head was settled.
var errFillPanicked = errors.New("internal error while fetching (see the proxy's log)")

// fillSettled runs fill. Should fill panic before it settled f's head (a bug;
// net/http recovers the panic and keeps serving), the flight fails rather
// than leave the clients that joined it, and all later ones for its URL,
// waiting on it.
func (h *Handler) fillSettled(req *http.Request, f *flight, stale *cache.Entry, fwd string, registered bool) {
	settled := false
	defer func() {
		if !settled {
			select {
			case <-f.head:
			default:
				f.err = errFillPanicked
				h.land(f, registered)
				close(f.head)
			}
		}
	}()
	h.fill(req, f, stale, fwd, registered)
	settled = true
}

// land removes f from the flights under way, so that later requests find
// the cache (or start afresh) instead.
func (h *Handler) land(f *flight, registered bool) {
	if !registered {
		return
	}
	h.mu.Lock()
	if h.flights[f.key] == f {
		delete(h.flights, f.key)
	}
	h.mu.Unlock()
}

// streamResponse is the client's copy of a fetched response head with body.
func (h *Handler) streamResponse(req *http.Request, up *http.Response, body io.ReadCloser, status string) *http.Response {
	hdr := up.Header.Clone()
	cache.ClampAge(hdr)
	hdr["Via"] = append(hdr["Via"], viaValue)
	// Caches along the way each add their entry; the one closest to the
	// client comes last (RFC 9211 §2).
	hdr["Cache-Status"] = append(hdr["Cache-Status"], status)
	resp := &http.Response{
		Status: up.Status, StatusCode: up.StatusCode,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, ContentLength: up.ContentLength, Request: req,
	}
	if up.ContentLength >= 0 {
		hdr.Set("Content-Length", strconv.FormatInt(up.ContentLength, 10))
	}
	if up.StatusCode == http.StatusOK && cache.NotModified(req, &cache.Entry{Status: up.StatusCode, Header: up.Header}) {
		// The client already holds this representation: answer its
		// conditional request ourselves (RFC 9110 §13.2.2).
		body.Close()
		nm := cache.NotModifiedHeaders(&cache.Entry{Status: up.StatusCode, Header: up.Header})
		nm["Via"] = hdr["Via"]
		nm["Cache-Status"] = hdr["Cache-Status"]
		resp.StatusCode, resp.Status = http.StatusNotModified, "304 Not Modified"
		resp.Header, resp.Body, resp.ContentLength = nm, http.NoBody, 0
		return resp
	}
	if req.Method == http.MethodHead {
		body.Close()
		body = http.NoBody
	}
	resp.Body = body
	return resp
}
