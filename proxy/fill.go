package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stageproxy/stageproxy/cache"
)

// fill fetches req's URL for flight f and feeds its body to the flight's
// readers and, when storable, to the cache. It is detached from the client
// that started it, bounded by the transport's timeouts and an idle timer.
//
// fill returns once f's head is settled (f.head closed). It runs on the
// starter's goroutine, which would only wait for the head anyway: a handoff
// to a goroutine of its own and back cost 15-28 µs a miss (sequential
// no-store 4 KiB misses through the binary, median of 3000, alternating
// builds). A body headed for the flight is read on a goroutine of its own
// (f.readBody), so that the starter hanging up does not stop it; the first
// reader to wait for bytes, or to leave, starts it (see flight.kick).
func (h *Handler) fill(req *http.Request, f *flight, stale *cache.Entry, fwd string, registered bool) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(req.Context()))
	idle := time.AfterFunc(h.idleTimeout, cancel)
	out := req.Clone(ctx)
	out.RequestURI = ""
	// The client closing its connection says nothing of ours upstream.
	out.Close = false
	for _, k := range conditionalHeaders {
		out.Header.Del(k)
	}
	if stale != nil {
		cache.AddValidators(out.Header, stale)
	}

	reqTime := h.now()
	f.route = h.route()
	resp, ex, err := f.route.fetch(out)
	// conditional is whether resp answers our validators: only then may a
	// 304 update stale.
	conditional := stale != nil
	if err == nil && conditional && resp.StatusCode == http.StatusNotModified && !cache.SelectedBy304(stale, resp.Header) {
		// The 304 names a validator the stored response does not have
		// (say a new strong ETag to our If-Modified-Since): RFC 9111
		// §4.3.4 forbids updating the stored response from it, and it
		// has no body to serve. Ask again without validators, as for a
		// miss; what comes back replaces the stored response (or, if not
		// storable, removes it below).
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		for _, k := range conditionalHeaders {
			out.Header.Del(k)
		}
		conditional = false
		h.metrics.upstreamRequests.Inc()
		reqTime = h.now()
		resp, ex, err = f.route.fetch(out)
	}
	respTime := h.now()
	// fail settles the head on err; fwdStatus is the status the origin
	// answered, or 0 when it did not answer.
	fail := func(err error, fwdStatus int) {
		idle.Stop()
		cancel()
		if stale != nil && cache.StaleIfError(req, stale, respTime, h.opts.ServeStaleOnError) {
			if fwdStatus == 0 {
				fwdStatus = errorStatus(err)
			}
			f.entry = stale
			f.cacheStatus = cacheStatusName + "; fwd=stale; fwd-status=" + strconv.Itoa(fwdStatus) + "; detail=stale-if-error"
		} else {
			f.err = err
		}
		h.land(f, registered)
		close(f.head)
	}
	if err != nil {
		fail(err, 0)
		return
	}
	removeHopByHop(resp.Header)
	fwdStatus := cacheStatusName + "; fwd=" + fwd + "; fwd-status=" + strconv.Itoa(resp.StatusCode)

	if conditional && resp.StatusCode == http.StatusNotModified {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		idle.Stop()
		cancel()
		merged := cache.Merge304(stale, resp.Header, reqTime, respTime)
		h.storeChecked(req, resp, ex, f.key, merged)
		f.entry = merged
		f.cacheStatus = fwdStatus
		h.land(f, registered)
		close(f.head)
		return
	}
	if stale != nil && resp.StatusCode >= 500 && cache.StaleIfError(req, stale, respTime, h.opts.ServeStaleOnError) {
		resp.Body.Close()
		fail(errors.New(resp.Status), resp.StatusCode)
		return
	}

	f.resp = resp
	storable := cache.Storable(req, resp.StatusCode, resp.Header) &&
		resp.ContentLength <= h.maxBody()
	if !storable {
		// Not shared: the starter streams straight from upstream, with
		// nothing held here; joiners fetch on their own.
		//
		// A response that replaces a revalidated one removes it (its
		// successor is not storable), except a 5xx: RFC 9111 §4.3.3 lets
		// the cache forward that or act as if the origin had not answered,
		// never discard what it holds. One passing 503 must not cost the
		// next client a full download.
		if stale != nil && resp.StatusCode < 500 {
			h.cache.Delete(f.key)
		}
		f.shared = false
		f.cacheStatus = fwdStatus
		resp.Body = &idleBody{ReadCloser: resp.Body, timer: idle, idle: h.idleTimeout, cancel: cancel}
		h.land(f, registered)
		close(f.head)
		return
	}
	f.shared = true
	f.cacheStatus = fwdStatus + "; stored"
	if names, _ := cache.VaryNames(resp.Header); len(names) > 0 {
		f.varyNames, f.varyValues = names, cache.VaryValues(req.Header, names)
	}
	if resp.ContentLength > 0 {
		// Start small so the first bytes go out at once; the buffer grows
		// to the announced length in one step after them (allocating and
		// zeroing 16 MiB before the first byte cost milliseconds).
		f.buf = make([]byte, 0, min(resp.ContentLength, 64<<10))
		f.sizeHint = resp.ContentLength
	}
	// Body bytes that came with the head wait in the connection's buffer.
	// When more of the body is still to come, take them here, so that the
	// starter writes them with the head rather than after a handoff from
	// the body's goroutine, which is busy reading the rest: 16 MiB misses
	// got their first byte 0.1-0.2 ms sooner (medians of 120 sequential
	// misses, 8 alternating runs). A body that came whole is left to that
	// goroutine, which ends it at once.
	var first int64
	var firstErr error
	if cap(f.buf) > 0 {
		if b := ex.buffered; b > 0 && b < resp.ContentLength {
			n, err := resp.Body.Read(f.buf[:min(b, int64(cap(f.buf)))])
			f.buf, first, firstErr = f.buf[:n], int64(n), err
		}
	}
	// Readers clone resp.Header once head is closed: the stored copy is
	// made before.
	storedHeader := resp.Header.Clone()
	delete(storedHeader, "Content-Length")
	f.stored = &cache.Entry{Status: resp.StatusCode, Header: storedHeader, RequestTime: reqTime, ResponseTime: respTime}
	f.stored.Prepare()
	f.readBody = func() {
		// The body's bytes count against the cache while they arrive
		// (see cache.Reserve); copyBody extends the reservation of a
		// body of unknown length as it grows. Reserved after the head is
		// out: any evicting it does is then not on the way to the
		// client's first byte.
		f.reserved = max(resp.ContentLength, 0)
		f.release = h.cache.Reserve(f.reserved)
		err := h.copyBody(f, resp, idle, first, firstErr)
		idle.Stop()
		cancel()
		resp.Body.Close()
		f.release()
		if err == nil && f.storing {
			e := *f.stored // prepared already, for joiners
			e.Body = f.buf
			if h.storeChecked(req, resp, ex, f.key, &e) {
				h.metrics.stored.Inc()
			}
		}
		// Publish the end only now: a client that read the last byte
		// and asks again at once must find the cache, not a landed
		// flight.
		h.land(f, registered)
		f.finish(err)
		if err != nil && !errors.Is(err, errNoReaders) {
			h.metrics.upstreamErrors.Inc()
			h.log.Warn("upstream body failed", "url", req.URL.Redacted(), "err", err)
		}
	}
	close(f.head)
}

// msgTooLong is the warning for an origin that sent more than its
// Content-Length.
const msgTooLong = "origin sent more than its Content-Length; not stored"

// maxBody is the largest body stored: maxObjectSize, or the cache's own
// limit if that is lower, so that a body the fill decides to store is one
// the cache accepts.
func (h *Handler) maxBody() int64 {
	return min(h.maxObject, h.cache.MaxObjectBytes())
}

// storeChecked stores e, resp's entry, under key unless the origin sent more
// bytes than resp announced: its Content-Length was then wrong, and the body
// cut to it is not the object. Bytes that arrive after the store, before the
// connection carries another request, remove the entry again. Only a
// response framed by Content-Length is checked; a chunked one has its own
// end. An entry the cache refuses is logged with the reason: its response
// has already told the client "stored".
func (h *Handler) storeChecked(req *http.Request, resp *http.Response, ex *h1exchange, key string, e *cache.Entry) bool {
	if resp.ContentLength >= 0 && ex.excess() {
		h.log.Warn(msgTooLong, "url", req.URL.Redacted(), "length", resp.ContentLength)
		return false
	}
	if err := h.store(key, req.Header, e); err != nil {
		h.log.Warn("not stored", "url", req.URL.Redacted(), "err", err)
		return false
	}
	if resp.ContentLength >= 0 {
		ex.watch(func() {
			h.unstore(key, req.Header)
			h.log.Warn(msgTooLong, "url", req.URL.Redacted(), "length", resp.ContentLength)
		})
	}
	return true
}

// unstore removes what store put under key for a request with reqHeader:
// the entry, or its variant when the response varies.
func (h *Handler) unstore(key string, reqHeader http.Header) {
	if marker, ok := h.cache.Get(key); ok && marker.IsVaryMarker() {
		h.cache.Delete(variantKey(key, marker, reqHeader))
		return
	}
	h.cache.Delete(key)
}

// reserveStep is how far ahead the cache room for a body of unknown length
// is reserved.
const reserveStep = 1 << 20

// bufPool holds the buffers fills read upstream bodies into.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyBody reads resp's body into f, after the first bytes fill already
// put there (and the error their read returned). The error is nil only for
// a complete body: as long as Content-Length said, or to a clean end when
// it said nothing.
func (h *Handler) copyBody(f *flight, resp *http.Response, idle *time.Timer, first int64, firstErr error) error {
	total := first
	if firstErr != nil {
		return bodyEnd(resp, total, firstErr)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		idle.Reset(h.idleTimeout)
		// At most a copy buffer's worth at a time either way, so that
		// readers get bytes as they arrive.
		dst := f.spare()
		direct := len(dst) > 0
		if direct {
			dst = dst[:min(len(dst), len(buf))]
		} else {
			dst = buf
		}
		n, err := resp.Body.Read(dst)
		if n > 0 {
			total += int64(n)
			if resp.ContentLength >= 0 && total > resp.ContentLength {
				return errors.New("body longer than its Content-Length")
			}
			if total > h.maxBody() {
				if f.storing { // only this goroutine changes it
					f.stopStoring()
					f.release()
					h.log.Info("not stored: body grew past maxObjectSize", "url", resp.Request.URL.Redacted(), "maxObjectSize", h.maxBody())
				}
			} else if total > f.reserved {
				// A body of unknown length: reserve a step ahead,
				// as one reservation of the new total.
				f.reserved = min(max(total, f.reserved+reserveStep), h.maxBody())
				f.release()
				f.release = h.cache.Reserve(f.reserved)
			}
			if direct {
				// Within the announced length (checked above), so
				// within spare: nothing to stop storing for.
				f.commit(n)
			} else if !f.write(buf[:n]) {
				return errNoReaders
			}
		}
		if err != nil {
			return bodyEnd(resp, total, err)
		}
	}
}

// bodyEnd is copyBody's verdict on a body whose read ended with err after
// total bytes: nil only for a clean end at the announced length.
func bodyEnd(resp *http.Response, total int64, err error) error {
	if err != io.EOF {
		return err
	}
	if resp.ContentLength >= 0 && total != resp.ContentLength {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// idleBody is an upstream body streamed to a single client: every read
// pushes back the idle deadline, and closing it releases the fetch.
type idleBody struct {
	io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	cancel context.CancelFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	return b.ReadCloser.Read(p)
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}
