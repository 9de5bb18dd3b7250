package proxy

import (
	"net"
	"sync"
	"time"
)

// Write coalescing. net/http writes a response through a 4 KiB buffer, so
// a response a little over 4 KiB (a 4 KiB object and its headers, the
// commonest cache hit) leaves in two system calls: a full buffer, then the
// rest when the response ends. On loopback each costs as much as the rest
// of a cache hit. A write of exactly the buffer's size is such a full
// buffer, with more following at once; the connection holds it back and
// sends it together with the next write (writev), or on its own after
// coalesceDelay if nothing follows (a handler that flushed exactly 4 KiB and
// then waits). Tunnels are not held back.

const (
	// coalesceSize is net/http's per-connection write buffer size.
	coalesceSize = 4 << 10
	// coalesceDelay bounds how long held bytes wait for the next write.
	coalesceDelay = time.Millisecond
	// coalesceLarge is the size from which the next write goes on its own.
	coalesceLarge = 64 << 10
)

// coalescer holds back a full-buffer write. Its zero value is ready.
type coalescer struct {
	mu    sync.Mutex
	held  []byte      // protects: mu; bytes written to the caller but not yet sent
	err   error       // protects: mu; a failed delayed send, reported by the next write
	timer *time.Timer // protects: mu
	// delay is how long held bytes wait for the next write; 0 means
	// coalesceDelay. Tests set it.
	delay time.Duration
}

// write sends p on c, holding back or joining a held full buffer.
func (w *coalescer) write(c net.Conn, p []byte, tunnel bool) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if len(w.held) > 0 && len(p) >= coalesceLarge {
		// A large write gains nothing from joining; measured, writev
		// with it was slower than two writes (1 MiB hits, go run ./bench
		// -only 1m: 0.72x against 0.87x the direct origin).
		w.timer.Stop()
		_, err := c.Write(w.held)
		w.held = w.held[:0]
		if err != nil {
			return 0, err
		}
		return c.Write(p)
	}
	if len(w.held) > 0 {
		w.timer.Stop()
		held := len(w.held)
		bufs := net.Buffers{w.held, p}
		n, err := bufs.WriteTo(c)
		w.held = w.held[:0]
		return max(int(n)-held, 0), err
	}
	if len(p) != coalesceSize || tunnel {
		return c.Write(p)
	}
	w.held = append(w.held[:0], p...) // the caller reuses p
	d := w.delay
	if d == 0 {
		d = coalesceDelay
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(d, func() { w.flush(c) })
	} else {
		w.timer.Reset(d)
	}
	return len(p), nil
}

// flush sends what is held.
func (w *coalescer) flush(c net.Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.held) == 0 {
		return
	}
	if _, err := c.Write(w.held); err != nil && w.err == nil {
		w.err = err
	}
	w.held = w.held[:0]
}

// stop sends what is held and stops the timer, before the connection
// closes.
func (w *coalescer) stop(c net.Conn) {
	w.flush(c)
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}
