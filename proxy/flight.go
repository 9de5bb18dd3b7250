package proxy

import (
	"io"
	"net/http"
	"sync"

	"github.com/stageproxy/stageproxy/cache"
)

// A flight is one upstream fetch of a cacheable URL that any number of
// clients read while it fills (read-while-write): the first miss starts it,
// concurrent misses for the same URL join it instead of fetching again, and
// every reader gets bytes as they arrive rather than after the whole object.
//
// The body is fetched on its own goroutine, detached from the client that
// started it, so one client hanging up does not abort a download others wait
// on (nor the copy that will be stored); the head, on the starter's (see
// Handler.fill). groupcache's singleflight cannot do this: it
// hands its result over only when the call returns.
type flight struct {
	key  string // the primary cache key
	hops int    // stageproxy entries in the starter's Via (see startOrJoin)

	// head is closed once the fields below are set; they are read-only
	// after that.
	head chan struct{}
	// err is set when the fetch failed before a response head arrived.
	err error
	// route is the upstream configuration the fetch went out on.
	route *route
	// resp is the upstream response head (hop-by-hop fields removed). Its
	// body belongs to the flight.
	resp *http.Response
	// entry is set when the answer is a stored entry (a revalidation that
	// got 304, or a stale entry served because the origin failed); the
	// body is then entry.Body and nothing streams.
	entry *cache.Entry
	// cacheStatus is the Cache-Status value readers report.
	cacheStatus string
	// varyValues are the initiator's values of the headers the response
	// varies on; a joiner whose values differ must fetch on its own.
	varyNames, varyValues []string
	// shared is false when the response turned out not to be storable:
	// only the initiator reads it, straight from upstream.
	shared bool
	// stored is the shared response as the cache will hold it, without its
	// body: a joiner may read the flight only when this could answer it
	// from the cache without validation (see Handler.fetchShared).
	stored *cache.Entry

	mu   sync.Mutex
	cond sync.Cond // signals new bytes, completion, or a reader leaving
	// buf holds body bytes from absolute offset off on. While the object
	// may be stored, off is 0 and buf grows to the whole body; once it
	// cannot be (too large), bytes every reader has passed are dropped.
	buf      []byte // protects: mu
	off      int64  // protects: mu
	complete bool   // protects: mu; the body ended (see bodyErr)
	bodyErr  error  // protects: mu; non-nil when the body ended badly
	storing  bool   // protects: mu; the body is still headed for the cache
	readers  map[*flightReader]struct{}
	// sizeHint is the announced body length, to which buf grows in one
	// step once its small first allocation is full. Only the filler
	// goroutine touches it.
	sizeHint int64
	// grown is set once buf has its final capacity: the filler then reads
	// the body straight into it (spare, commit) instead of through a copy
	// buffer. Only the filler goroutine touches it.
	grown bool
	// reserved is how many body bytes the cache has set aside for this
	// fill (cache.Reserve); release gives them back. Only the filler
	// goroutine touches them.
	reserved int64
	release  func()
	// firstTaken is set once a reader has taken bytes.
	firstTaken bool // protects: mu
	// joinable is false once a newcomer could no longer read the body from
	// its start.
	joinable bool // protects: mu

	// readBody reads the body into the flight. It is set before head
	// closes and started by the first reader that has taken every byte
	// so far (or leaves): see kick.
	readBody  func()
	bodyStart sync.Once
}

// kick starts reading the body, once. It is left to the readers rather
// than done as the head settles, so that the starter writes the head and
// the bytes that came with it before a second goroutine of the fill
// competes with it for a CPU (the origin, sending the rest, holds the
// other one on a 2-core machine); the starter then waits for bytes, and the
// body's goroutine takes its place. 16 MiB misses after the cache-hit
// phases of the benchmark: first byte 1.02x Squid's against 1.20x without
// (medians of 40, three alternating pairs).
func (f *flight) kick() {
	if f.readBody != nil {
		f.bodyStart.Do(func() { go f.readBody() })
	}
}

func newFlight(key string) *flight {
	f := &flight{key: key, head: make(chan struct{}), readers: map[*flightReader]struct{}{}, joinable: true, storing: true}
	f.cond.L = &f.mu
	return f
}

// flightReader reads a flight's body from the start, blocking for bytes
// that have not arrived yet.
type flightReader struct {
	f      *flight
	pos    int64
	closed bool
}

// newReader registers a reader, or returns nil when the body's start is
// gone.
func (f *flight) newReader() *flightReader {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.joinable {
		return nil
	}
	r := &flightReader{f: f}
	f.readers[r] = struct{}{}
	return r
}

func (r *flightReader) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if r.closed {
			return 0, io.ErrClosedPipe
		}
		end := f.off + int64(len(f.buf))
		if r.pos < end {
			n := copy(p, f.buf[r.pos-f.off:])
			r.pos += int64(n)
			if !f.storing || !f.firstTaken {
				f.firstTaken = true
				f.cond.Broadcast() // the filler may be waiting for room or a first read
			}
			return n, nil
		}
		if f.complete {
			if f.bodyErr != nil {
				return 0, f.bodyErr
			}
			return 0, io.EOF
		}
		f.kick()
		f.cond.Wait()
	}
}

// WriteTo lets io.Copy hand large runs of the buffer to the client in one
// write instead of 32 KiB at a time. Before it waits for more bytes it
// flushes w, so that the client receives what has arrived so far (goproxy
// itself flushes only chunked responses).
func (r *flightReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	f := r.f
	flusher, _ := w.(http.Flusher)
	dirty := false
	for {
		f.mu.Lock()
		if dirty && flusher != nil && !r.closed && r.pos >= f.off+int64(len(f.buf)) && !f.complete {
			f.mu.Unlock()
			flusher.Flush()
			dirty = false
			continue
		}
		for !r.closed && r.pos >= f.off+int64(len(f.buf)) && !f.complete {
			f.kick()
			f.cond.Wait()
		}
		if r.closed {
			f.mu.Unlock()
			return total, io.ErrClosedPipe
		}
		end := f.off + int64(len(f.buf))
		if r.pos >= end { // complete
			err := f.bodyErr
			f.mu.Unlock()
			return total, err
		}
		chunk := f.buf[r.pos-f.off:]
		trimming := !f.storing
		f.mu.Unlock()

		// chunk is never modified once appended (appends may move buf,
		// never rewrite it), so it is safe to write without the lock.
		n, err := w.Write(chunk)
		total += int64(n)
		dirty = true
		f.mu.Lock()
		r.pos += int64(n)
		if trimming || !f.firstTaken {
			f.firstTaken = true
			f.cond.Broadcast()
		}
		f.mu.Unlock()
		if err != nil {
			return total, err
		}
	}
}

func (r *flightReader) Close() error {
	f := r.f
	f.kick()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !r.closed {
		r.closed = true
		delete(f.readers, r)
		f.cond.Broadcast()
	}
	return nil
}

// window bounds how far the filler may run ahead of its slowest reader once
// the body is no longer being stored.
const window = 1 << 20

// write appends body bytes and wakes readers. While the body is not headed
// for the cache it waits until the slowest reader is within window, and
// returns false when no reader is left (the fetch should stop).
func (f *flight) write(p []byte) bool {
	var grown []byte
	if f.sizeHint > 0 && f.storing {
		// Only this goroutine appends to buf, so its length and capacity
		// can be read without the lock; allocate outside it.
		if n := len(f.buf) + len(p); n > cap(f.buf) {
			if f.sizeHint >= int64(n) {
				// Let the first bytes reach a client before the one
				// large allocation, which near the memory limit can
				// stall behind a GC.
				f.mu.Lock()
				for !f.firstTaken && len(f.readers) > 0 {
					f.cond.Wait()
				}
				f.mu.Unlock()
				grown = make([]byte, 0, f.sizeHint)
				f.grown = true
			}
			f.sizeHint = 0
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if grown != nil {
		// Readers may still be writing from the old array: it is left as
		// it is, never reused.
		f.buf = append(grown, f.buf...)
	}
	if !f.storing {
		for len(f.readers) > 0 && f.end()-f.minPosLocked() > window {
			f.cond.Wait()
		}
		if len(f.readers) == 0 {
			return false
		}
		f.trimLocked()
	}
	f.buf = append(f.buf, p...)
	f.cond.Broadcast()
	return true
}

// spare is buf's free capacity once buf has grown to the announced length
// (nil before, or once the body is no longer stored): the filler reads body
// bytes into it and publishes them with commit, which saves copying every
// byte of a large body once more. Readers never look past len(buf), and
// only the filler changes buf or storing, so it may read them unlocked.
func (f *flight) spare() []byte {
	if !f.grown || !f.storing {
		return nil
	}
	return f.buf[len(f.buf):cap(f.buf)]
}

// commit publishes n bytes the filler read into spare.
func (f *flight) commit(n int) {
	f.mu.Lock()
	f.buf = f.buf[:len(f.buf)+n]
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *flight) end() int64 { return f.off + int64(len(f.buf)) }

func (f *flight) minPosLocked() int64 {
	min := f.end()
	for r := range f.readers {
		if r.pos < min {
			min = r.pos
		}
	}
	return min
}

// trimLocked drops the bytes every reader has passed.
func (f *flight) trimLocked() {
	drop := f.minPosLocked() - f.off
	if drop <= 0 {
		return
	}
	rest := len(f.buf) - int(drop)
	nb := make([]byte, rest, max(rest, 64<<10))
	copy(nb, f.buf[drop:])
	f.buf = nb
	f.off += drop
}

// stopStoring gives up on caching the body (it grew past the object size
// limit): no one may join any more, and bytes are dropped as readers pass
// them.
func (f *flight) stopStoring() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storing = false
	f.joinable = false
	f.trimLocked()
	f.cond.Broadcast()
}

// finish marks the body complete; err is nil for a clean end.
func (f *flight) finish(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.complete = true
	f.bodyErr = err
	f.cond.Broadcast()
}
