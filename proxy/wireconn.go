package proxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// wireConn is a connection the route's Transport sends requests on (to an
// origin or an HTTP parent, above TLS when there is TLS), wrapped to count
// the bytes each response took on the wire. A fill needs that count to
// refuse a body longer than its Content-Length: the Transport reads exactly
// Content-Length bytes and reports a clean io.EOF, so the body alone looks
// complete, while the rest waits in the Transport's buffer (until its read
// loop logs "Unsolicited response received on idle HTTP channel" and closes
// the connection). An origin that sends more than it announced got its
// length wrong, so the body cut to that length is not the object: RFC 9112
// §6.3 forbids a cache to take the extra bytes as a response of their own,
// and we do not store the cut one either.
//
// The Transport never pipelines: it writes a request, then reads its
// response whole before the connection carries another. So a Write after
// response bytes were read starts a new exchange, and every byte read until
// the next such Write belongs to the response of the current one: its head
// (found by headScanner), its body, and whatever the origin sent beyond.
// A request written in several Writes before any response byte (a large
// head) stays one exchange. A request whose body follows a 100 Continue
// becomes two; only GET fills are checked, and their requests have none.
type wireConn struct {
	net.Conn // embedded to be a net.Conn: Close, deadlines and addresses pass through

	mu sync.Mutex
	// cur is the exchange under way and prev the one before it, kept for
	// a fill that checks after the Transport already sent the next
	// request on the connection (it may reuse it as soon as the body
	// ended).
	cur, prev exchangeState // protects: mu
}

// exchangeState is what a wireConn knows of one request and its response.
type exchangeState struct {
	// seq numbers the connection's exchanges from 1; 0 holds bytes read
	// before the first request.
	seq  uint64
	read int64 // response bytes read off the wire
	head headScanner
	// late, set by watch, runs once if a read takes read past limit: the
	// origin sent more after the fill had already stored the response.
	late  func()
	limit int64
}

var _ net.Conn = (*wireConn)(nil)

func newWireConn(c net.Conn) *wireConn { return &wireConn{Conn: c} }

// wireDial wraps every connection dial makes in a wireConn.
func wireDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newWireConn(c), nil
	}
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	c.mu.Lock()
	ex := &c.cur
	if !ex.head.done {
		ex.head.scan(p[:n]) // once the head has ended, body bytes cost only the add below
	}
	ex.read += int64(n)
	var late func()
	if ex.late != nil && ex.read > ex.limit {
		late, ex.late = ex.late, nil
	}
	c.mu.Unlock()
	if late != nil {
		// These bytes belong to no response (RFC 9112 §6.3). Drop them
		// and end the connection: the Transport then neither logs them
		// as unsolicited nor, should a request have just been handed
		// this connection, reads them as its response (it retries that
		// request on another connection instead).
		c.Conn.Close()
		late()
		return 0, errLateBytes
	}
	return n, err
}

// errLateBytes ends a connection on which bytes came after a response the
// fill had checked complete.
var errLateBytes = errors.New("origin sent bytes after a complete response")

func (c *wireConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	// Before the bytes go out: on a fast origin the response could
	// otherwise be read, and counted, before the exchange began.
	if c.startsExchangeLocked() {
		c.prev = c.cur
		c.prev.late = nil // a late read now belongs to the new exchange
		c.cur = exchangeState{seq: c.prev.seq + 1}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *wireConn) startsExchangeLocked() bool { return c.cur.seq == 0 || c.cur.read > 0 }

// next is the seq of the exchange the connection's next request will be.
func (c *wireConn) next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.startsExchangeLocked() {
		return c.cur.seq + 1
	}
	return c.cur.seq
}

// findLocked returns exchange seq, or nil when the connection has moved
// further on.
func (c *wireConn) findLocked(seq uint64) *exchangeState {
	switch seq {
	case c.cur.seq:
		return &c.cur
	case c.prev.seq:
		return &c.prev
	}
	return nil
}

// excess reports whether exchange seq read more bytes than its response
// head plus bodyLen, and then ends the connection. It is false when that
// cannot be told (the head did not parse, or the exchange is no longer
// known): the check never refuses an honest response.
func (c *wireConn) excess(seq uint64, bodyLen int64) bool {
	c.mu.Lock()
	ex := c.findLocked(seq)
	excess := ex != nil && ex.head.ok() && ex.read > ex.head.n+bodyLen
	c.mu.Unlock()
	if excess {
		// The extra bytes wait in the Transport's buffer, where the next
		// request on this connection would read them as its response.
		// Once closed, a request handed the connection before the
		// Transport noticed fails its write and is retried elsewhere.
		c.Conn.Close()
	}
	return excess
}

// watch calls late (once, on the Transport's read loop) if exchange seq,
// whose response was bodyLen body bytes, reads more before the connection
// carries another request, and then ends the connection; it calls late at
// once if the exchange already read more.
func (c *wireConn) watch(seq uint64, bodyLen int64, late func()) {
	c.mu.Lock()
	ex := &c.cur
	if ex.seq != seq || !ex.head.ok() {
		c.mu.Unlock()
		return
	}
	ex.limit = ex.head.n + bodyLen
	if ex.read > ex.limit {
		c.mu.Unlock()
		late()
		return
	}
	ex.late = late
	c.mu.Unlock()
}

// wireExchange names the exchange a request went out on. The zero value (a
// connection that is not a wireConn, such as an HTTP/2 one) checks nothing.
type wireExchange struct {
	c   *wireConn
	seq uint64
}

func (w wireExchange) excess(bodyLen int64) bool {
	return w.c != nil && w.c.excess(w.seq, bodyLen)
}

// buffered is how many bytes of the exchange's response body have been
// read off the wire: once the Transport returned the head, they wait in its
// buffer, and reading that many from the body does not block. It is 0 when
// that cannot be told.
func (w wireExchange) buffered() int64 {
	if w.c == nil {
		return 0
	}
	return w.c.buffered(w.seq)
}

func (c *wireConn) buffered(seq uint64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ex := c.findLocked(seq)
	if ex == nil || !ex.head.ok() {
		return 0
	}
	return ex.read - ex.head.n
}

func (w wireExchange) watch(bodyLen int64, late func()) {
	if w.c != nil {
		w.c.watch(w.seq, bodyLen, late)
	}
}

// traceExchange returns ctx with a trace that records the exchange a request
// sent with it goes out on. httptrace may call hooks from other goroutines,
// hence the atomic; read it after the round trip returned.
func traceExchange(ctx context.Context, w *atomic.Pointer[wireExchange]) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			// A retry on another connection calls GotConn again: the
			// last one is where the response came from.
			ex := &wireExchange{}
			if c, ok := info.Conn.(*wireConn); ok {
				ex = &wireExchange{c: c, seq: c.next()}
			}
			w.Store(ex)
		},
	})
}

// headScanner finds where a response head ends in the bytes read off the
// wire: at the blank line closing the final response's header block, after
// any 1xx interim responses (RFC 9110 §15.2), which the Transport reads past
// as well (it takes 101 as final). Lines end in LF or CRLF, as the
// Transport accepts both.
type headScanner struct {
	n    int64 // bytes of head scanned so far; the whole head once done
	done bool  // the head ended (or could not be parsed: see bad)
	bad  bool  // the head's end is unknown; nothing may be judged on it

	lineLen int  // bytes of the current line so far, without its LF
	last    byte // the current line's last byte so far
	lines   int  // lines ended in the current block
	// status holds the start of the current block's status line, enough
	// for "HTTP/1.1 100"; statusLen is its whole length so far.
	status    [32]byte
	statusLen int
}

func (s *headScanner) ok() bool { return s.done && !s.bad }

// scan takes the next bytes read. Those after the head's end are the body
// and are not looked at.
func (s *headScanner) scan(p []byte) {
	for len(p) > 0 && !s.done {
		i := bytes.IndexByte(p, '\n')
		line := p
		if i >= 0 {
			line = p[:i]
		}
		if s.lines == 0 {
			if s.statusLen < len(s.status) {
				copy(s.status[s.statusLen:], line)
			}
			s.statusLen += len(line)
		}
		if len(line) > 0 {
			s.last = line[len(line)-1]
		}
		s.lineLen += len(line)
		if i < 0 {
			s.n += int64(len(p))
			return
		}
		s.n += int64(i + 1)
		p = p[i+1:]
		blank := s.lineLen == 0 || (s.lineLen == 1 && s.last == '\r')
		s.lineLen = 0
		if !blank {
			s.lines++
			continue
		}
		s.endBlock()
	}
}

// endBlock is called at the blank line that ends a header block.
func (s *headScanner) endBlock() {
	interim, ok := s.interim()
	switch {
	case !ok:
		s.done, s.bad = true, true
	case interim:
		s.lines, s.statusLen = 0, 0 // the final response's block follows
	default:
		s.done = true
	}
}

// interim parses the block's status line as the Transport does (the code is
// the three characters after the first space and any spaces following it)
// and reports whether it is a 1xx other than 101. ok is false when the line
// is not a status line, or is too long to tell.
func (s *headScanner) interim() (interim, ok bool) {
	if s.lines == 0 {
		return false, false // a blank line where the status line belongs
	}
	whole := s.statusLen <= len(s.status)
	line := s.status[:min(s.statusLen, len(s.status))]
	if whole {
		line = bytes.TrimSuffix(line, []byte("\r"))
	}
	_, rest, found := bytes.Cut(line, []byte(" "))
	if !found {
		return false, false
	}
	rest = bytes.TrimLeft(rest, " ")
	code, _, ended := bytes.Cut(rest, []byte(" "))
	if len(code) != 3 || (!whole && !ended) {
		return false, false
	}
	n := 0
	for _, d := range code {
		if d < '0' || d > '9' {
			return false, false
		}
		n = n*10 + int(d-'0')
	}
	return n >= 100 && n <= 199 && n != 101, true
}
