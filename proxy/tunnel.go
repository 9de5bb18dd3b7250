package proxy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleConn closes a tunnel that carried nothing for idle: every read or
// write pushes the deadline back.
type idleConn struct {
	net.Conn
	idle      time.Duration
	last      atomic.Int64 // unix nanoseconds of the last deadline refresh
	read      atomic.Int64 // bytes read from upstream: what the client was sent
	onClose   func()
	closeOnce sync.Once
}

func (c *idleConn) extend() {
	// Setting a deadline is cheap but not free; refresh it at most once a
	// second. Reads and writes run on two goroutines, hence the atomic.
	now := time.Now()
	if last := c.last.Load(); now.UnixNano()-last > int64(time.Second) && c.last.CompareAndSwap(last, now.UnixNano()) {
		c.Conn.SetDeadline(now.Add(c.idle))
	}
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.extend()
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) { c.extend(); return c.Conn.Write(p) }

// CloseWrite and CloseRead keep the half-close that goproxy's tunnel copy
// uses when both ends are TCP connections.
func (c *idleConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *idleConn) CloseRead() error {
	if hc, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return hc.CloseRead()
	}
	return nil
}

// Close ends the tunnel and takes it off the open set, once.
func (c *idleConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.onClose)
	return err
}

// tunnelSet tracks the open CONNECT tunnels (their upstream side), which
// net/http forgets once they are hijacked, so that a shutdown can let them
// finish.
type tunnelSet struct {
	mu      sync.Mutex
	conns   map[*idleConn]struct{} // protects: mu
	changed chan struct{}          // protects: mu; closed when a tunnel ends
}

// open tracks c as a new tunnel's upstream connection; closed is called
// once when it closes, with the bytes read from it.
func (s *tunnelSet) open(c net.Conn, closed func(read int64)) *idleConn {
	ic := &idleConn{Conn: c, idle: tunnelIdle}
	ic.onClose = func() {
		s.remove(ic)
		if closed != nil {
			closed(ic.read.Load())
		}
	}
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*idleConn]struct{}{}
		s.changed = make(chan struct{})
	}
	s.conns[ic] = struct{}{}
	s.mu.Unlock()
	return ic
}

func (s *tunnelSet) remove(c *idleConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Shutdown waits for the open CONNECT tunnels to end, and closes those
// still open when ctx is done. Call it after the http.Server's Shutdown,
// which waits for the other requests but not for hijacked connections.
func (h *Handler) Shutdown(ctx context.Context) error {
	s := &h.tunnels
	for {
		s.mu.Lock()
		n, changed := len(s.conns), s.changed
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			s.mu.Lock()
			open := make([]*idleConn, 0, len(s.conns))
			for c := range s.conns {
				open = append(open, c)
			}
			s.mu.Unlock()
			for _, c := range open {
				c.Close()
			}
			return ctx.Err()
		}
	}
}
