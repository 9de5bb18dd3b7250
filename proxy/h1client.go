package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// h1client fetches a fill's GET or HEAD over HTTP/1.1 on the caller's
// goroutine: it writes the request and reads the response head itself, and
// the body is read by whoever reads resp.Body. http.Transport hands every
// request to a write goroutine and every response back from a read
// goroutine: sequential no-store 4 KiB misses through the binary took
// 180-224 µs with it against 163-192 µs with this client (medians of 3000,
// three alternating pairs), and futex calls fell from 6.0 to 3.5 a miss
// (strace -c). The framing is net/http's own (Request.Write,
// http.ReadResponse); what is ours is the connection pool.
//
// Owning the connection's buffer also tells a fill exactly whether the
// origin sent more than its Content-Length: the bytes after the body are
// still in the buffer when the body ends (see h1exchange).
//
// Requests with other methods, which are never stored, keep to the route's
// Transport.
type h1client struct {
	// dial reaches an origin for plain HTTP, or the HTTP parent when
	// proxyURL names one; dialTLS reaches an HTTPS origin (TLS over a
	// tunnel, through the parent if any).
	dial, dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	// proxyURL is the HTTP parent for a plain-HTTP request, or nil.
	proxyURL func(*http.Request) (*url.URL, error)

	mu      sync.Mutex
	idle    map[string][]*h1conn // protects: mu; per key, most recently used last
	nidle   int                  // protects: mu
	retired bool                 // protects: mu; connections are closed, not kept
}

const (
	// maxIdlePerKey and maxIdle bound the idle connections kept, as the
	// Transport's MaxIdleConnsPerHost and MaxIdleConns do.
	maxIdlePerKey = 64
	maxIdle       = 256
	// maxResponseHead bounds a response's head, as the request's is
	// bounded (http.DefaultMaxHeaderBytes).
	maxResponseHead = 1 << 20
	// max1xx is how many interim responses one request may get (as the
	// Transport allows).
	max1xx = 5
	// maxAttempts bounds the attempts of a request whose pooled
	// connections turn out closed; the last one dials. peekIdle weeds out
	// most such connections before any attempt, but cannot see through a
	// SOCKS connection's wrapper.
	maxAttempts = 4
)

// h1conn is one upstream connection of an h1client.
type h1conn struct {
	cl   *h1client
	key  string
	c    net.Conn
	raw  net.Conn // the TCP connection below c (below TLS, if any), for peekIdle
	br   *bufio.Reader
	bw   *bufio.Writer
	head headLimit // what br reads from: bounds a response head

	// The fields below are guarded by cl.mu.
	seq    uint64 // numbers the exchanges, from 1
	inPool bool
	inUse  bool // taken from the pool for a request
	expiry *time.Timer
	// watching is non-nil while a goroutine watches the idle connection
	// for bytes after a stored response (see h1exchange.watch); it is
	// closed when the watcher stops.
	watching chan struct{}
	// late is what watch was given for the exchange that left the
	// connection idle: called once if bytes come before it is reused.
	late func()
}

// errHeadTooLarge is a response head past maxResponseHead.
var errHeadTooLarge = fmt.Errorf("response head larger than %d KiB", maxResponseHead>>10)

// headLimit passes reads through, refusing more than n bytes while n >= 0.
type headLimit struct {
	r io.Reader
	n int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func newH1Conn(cl *h1client, key string, c net.Conn) *h1conn {
	pc := &h1conn{cl: cl, key: key, c: c, raw: c, head: headLimit{r: c, n: -1}}
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		pc.raw = tc.NetConn()
	}
	pc.br = bufio.NewReaderSize(&pc.head, 4<<10)
	pc.bw = bufio.NewWriterSize(c, 4<<10)
	return pc
}

// target is where req goes: the pool key, the address to dial, and the
// HTTP parent when req is written to one.
func (cl *h1client) target(req *http.Request) (key, addr string, tls bool, parent *url.URL, err error) {
	switch req.URL.Scheme {
	case "https":
		addr = hostPort(req.URL, "443")
		return "https|" + addr, addr, true, nil, nil
	case "http":
	default:
		return "", "", false, nil, fmt.Errorf("unsupported scheme %q", req.URL.Scheme)
	}
	if cl.proxyURL != nil {
		if parent, err = cl.proxyURL(req); err != nil {
			return "", "", false, nil, err
		}
	}
	if parent != nil {
		addr = hostPort(parent, "80")
		return "parent|" + addr, addr, false, parent, nil
	}
	addr = hostPort(req.URL, "80")
	return "http|" + addr, addr, false, nil, nil
}

// hostPort is u's HOST:PORT, with the scheme's default port when u has none.
func hostPort(u *url.URL, port string) string {
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// roundTrip sends req (a GET or HEAD without a body) and returns the
// response, whose body must be read to its end or closed, and the exchange
// it came on.
func (cl *h1client) roundTrip(req *http.Request) (*http.Response, *h1exchange, error) {
	key, addr, tls, parent, err := cl.target(req)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 1; ; attempt++ {
		pc, reused, err := cl.get(req.Context(), key, addr, tls, parent != nil, attempt < maxAttempts)
		if err != nil {
			return nil, nil, err
		}
		resp, ex, err := pc.exchange(req, parent)
		if err == nil {
			return resp, ex, nil
		}
		// A pooled connection the origin closed while it was idle fails
		// before any response byte: the request was not processed, and
		// a GET or HEAD is safe to send again (as the Transport does),
		// unless it had a body, which is gone.
		replayable := req.Body == nil || req.Body == http.NoBody
		if !reused || !replayable || !errors.Is(err, errNothingRead) || attempt == maxAttempts || req.Context().Err() != nil {
			return nil, nil, err
		}
	}
}

// errNothingRead marks an exchange that failed before any response byte.
var errNothingRead = errors.New("connection closed before a response")

// get returns an idle connection for key (when pooled is true), or dials
// one.
func (cl *h1client) get(ctx context.Context, key, addr string, useTLS, toParent, pooled bool) (pc *h1conn, reused bool, err error) {
	for pooled {
		cl.mu.Lock()
		pc = cl.popLocked(key)
		cl.mu.Unlock()
		if pc == nil {
			break
		}
		if pc.usable() {
			return pc, true, nil
		}
		pc.c.Close()
	}
	dial := cl.dial
	if useTLS {
		dial = cl.dialTLS
	}
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		if toParent {
			// As the Transport reports it, so that errorReason names
			// the parent.
			err = &net.OpError{Op: "proxyconnect", Net: "tcp", Err: err}
		}
		return nil, false, err
	}
	return newH1Conn(cl, key, c), false, nil
}

func (cl *h1client) popLocked(key string) *h1conn {
	conns := cl.idle[key]
	if len(conns) == 0 {
		return nil
	}
	pc := conns[len(conns)-1]
	cl.setIdleLocked(key, slices.Delete(conns, len(conns)-1, len(conns)))
	cl.nidle--
	pc.inPool, pc.inUse = false, true
	pc.seq++ // the exchange before is over: a late watch no longer applies
	if pc.expiry != nil {
		pc.expiry.Stop()
	}
	return pc
}

// usable reports whether a connection just taken from the pool can carry a
// request: nothing arrived on it while it was idle. Bytes there would be
// read as the response to the next request; an origin that sent them after
// a stored response has them reported to its watch.
func (pc *h1conn) usable() bool {
	if pc.watching != nil {
		// Stop the watcher: it returns from its read at the deadline.
		pc.c.SetReadDeadline(aLongTimeAgo)
		<-pc.watching
		pc.watching = nil
		if pc.br.Buffered() > 0 {
			if late := pc.late; late != nil {
				pc.late = nil
				late()
			}
			return false
		}
		if pc.c.SetReadDeadline(time.Time{}) != nil {
			return false
		}
	}
	usable, pending := peekIdle(pc.raw)
	if pending && pc.late != nil && pc.lateBytes() {
		// They came after a stored response, and the watcher had not
		// read them yet.
		pc.late()
	}
	pc.late = nil
	return usable && pc.br.Buffered() == 0 && !pc.tlsPending()
}

// lateBytes reads what is waiting on a connection that is not going to be
// reused and reports whether it is data: over TLS, the bytes on the socket
// may be a close_notify alert instead. The wait is bounded, and only taken
// when bytes are there.
func (pc *h1conn) lateBytes() bool {
	if pc.c.SetReadDeadline(time.Now().Add(lateReadWait)) != nil {
		return false
	}
	_, err := pc.br.Peek(1)
	return err == nil
}

// lateReadWait bounds lateBytes: enough for TLS to decrypt a record that is
// already on the socket.
const lateReadWait = 10 * time.Millisecond

// tlsPending reports whether TLS holds bytes it has read off the wire for
// the connection beyond what was asked of it: a body followed, in the same
// record, by more than its Content-Length. They are in neither br nor the
// socket. It never blocks: with the deadline passed, tls.Conn returns only
// what it already holds (a timeout leaves the connection usable).
func (pc *h1conn) tlsPending() bool {
	if pc.c == pc.raw || pc.br.Buffered() > 0 {
		return pc.br.Buffered() > 0
	}
	if pc.c.SetReadDeadline(aLongTimeAgo) != nil {
		return true
	}
	_, err := pc.br.Peek(1)
	if pc.c.SetReadDeadline(time.Time{}) != nil {
		return true
	}
	return err == nil
}

// aLongTimeAgo is a deadline that has passed: a read blocked on the
// connection returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// put keeps pc for another request, or closes it.
func (cl *h1client) put(pc *h1conn) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.retired || cl.nidle >= maxIdle || len(cl.idle[pc.key]) >= maxIdlePerKey {
		pc.c.Close()
		return
	}
	if cl.idle == nil {
		cl.idle = map[string][]*h1conn{}
	}
	cl.idle[pc.key] = append(cl.idle[pc.key], pc)
	cl.nidle++
	pc.inPool, pc.inUse = true, false
	if pc.expiry == nil {
		pc.expiry = time.AfterFunc(idleConnTimeout, func() { cl.expire(pc) })
	} else {
		pc.expiry.Reset(idleConnTimeout)
	}
}

// expire closes pc if it is still idle: it has been for idleConnTimeout.
func (cl *h1client) expire(pc *h1conn) {
	cl.mu.Lock()
	idle := pc.inPool && cl.removeLocked(pc)
	cl.mu.Unlock()
	if idle {
		pc.c.Close()
	}
}

// removeLocked takes pc out of the pool; false if it was not there.
func (cl *h1client) removeLocked(pc *h1conn) bool {
	conns := cl.idle[pc.key]
	for i, c := range conns {
		if c == pc {
			cl.setIdleLocked(pc.key, slices.Delete(conns, i, i+1))
			cl.nidle--
			pc.inPool = false
			pc.seq++
			return true
		}
	}
	return false
}

// setIdleLocked sets key's idle connections, forgetting key when there are
// none: a forward proxy meets origins without end.
func (cl *h1client) setIdleLocked(key string, conns []*h1conn) {
	if len(conns) == 0 {
		delete(cl.idle, key)
		return
	}
	cl.idle[key] = conns
}

// closeIdle closes the idle connections, and every other one once its
// exchange ends: the route is being replaced.
func (cl *h1client) closeIdle() {
	cl.mu.Lock()
	var conns []*h1conn
	for _, cs := range cl.idle {
		conns = append(conns, cs...)
	}
	for _, pc := range conns {
		pc.inPool = false
		pc.seq++
		if pc.expiry != nil {
			pc.expiry.Stop()
		}
	}
	cl.idle, cl.nidle, cl.retired = nil, 0, true
	cl.mu.Unlock()
	for _, pc := range conns {
		pc.c.Close()
	}
}

// exchange writes req on pc and reads the response head. An error wraps
// errNothingRead when no response byte came.
func (pc *h1conn) exchange(req *http.Request, parent *url.URL) (*http.Response, *h1exchange, error) {
	ctx := req.Context()
	// The fill cancels ctx when the body stalls (its idle timer):
	// closing the connection ends a read or write blocked on it.
	stop := context.AfterFunc(ctx, func() { pc.c.Close() })
	fail := func(err error) (*http.Response, *h1exchange, error) {
		stop()
		pc.c.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}

	pc.c.SetReadDeadline(time.Now().Add(responseHeaderTimeout))
	var err error
	if parent != nil {
		err = writeToParent(pc.bw, req, parent)
	} else {
		err = req.Write(pc.bw)
	}
	if err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		return fail(fmt.Errorf("%w: %w", errNothingRead, err))
	}
	pc.head.n = maxResponseHead
	if _, err := pc.br.Peek(1); err != nil {
		if isTimeout(err) {
			return fail(err)
		}
		return fail(fmt.Errorf("%w: %w", errNothingRead, err))
	}
	var resp *http.Response
	for n := 0; ; n++ {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err)
		}
		// Interim responses (RFC 9110 §15.2) carry nothing for us; 101
		// is final.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if n == max1xx {
			return fail(fmt.Errorf("more than %d interim (1xx) responses", max1xx))
		}
	}
	pc.head.n = -1
	pc.c.SetReadDeadline(time.Time{})

	pc.cl.mu.Lock()
	seq := pc.seq
	pc.cl.mu.Unlock()
	ex := &h1exchange{pc: pc, seq: seq, buffered: int64(pc.br.Buffered())}
	b := &h1body{
		r:    resp.Body,
		pc:   pc,
		ex:   ex,
		stop: stop,
		// Kept for the next request only when the response says where
		// it ends (or has no body) and does not ask to close.
		keep: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols &&
			(resp.Body == http.NoBody || resp.ContentLength >= 0 || isChunked(resp.TransferEncoding)),
		framed: resp.ContentLength >= 0,
	}
	if resp.Body == http.NoBody {
		b.end(true)
		return resp, ex, nil
	}
	resp.Body = b
	return resp, ex, nil
}

func isChunked(te []string) bool { return len(te) > 0 && te[0] == "chunked" }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeToParent writes req in absolute form to an HTTP parent, with the
// parent's credentials (never the client's: Proxy-Authorization is
// hop-by-hop and was removed).
func writeToParent(w io.Writer, req *http.Request, parent *url.URL) error {
	if parent.User == nil {
		return req.WriteProxy(w)
	}
	r := *req
	r.Header = req.Header.Clone()
	pass, _ := parent.User.Password()
	r.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(parent.User.Username()+":"+pass)))
	return r.WriteProxy(w)
}

// h1body is a response body read off an h1conn: at its end the connection
// goes back to the pool (or is closed).
type h1body struct {
	r      io.ReadCloser
	pc     *h1conn
	ex     *h1exchange
	stop   func() bool
	keep   bool
	framed bool // by Content-Length
	done   bool
	eof    bool // done at the body's clean end
}

func (b *h1body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.done {
		return 0, io.ErrClosedPipe
	}
	n, err := b.r.Read(p)
	if err != nil {
		b.end(err == io.EOF)
	}
	return n, err
}

// Close before the end closes the connection: net/http's body would read
// the rest of it first.
func (b *h1body) Close() error {
	if !b.done {
		b.end(false)
	}
	return nil
}

// end settles the connection once the body ended (clean) or was abandoned.
func (b *h1body) end(clean bool) {
	b.done, b.eof = true, clean
	stopped := b.stop()
	extra := b.pc.br.Buffered() > 0 || (clean && stopped && b.pc.tlsPending())
	if clean && b.framed && extra {
		// Bytes past Content-Length: no response of their own (RFC 9112
		// §6.3), and the length the origin gave was wrong.
		b.ex.extra.Store(true)
	}
	if clean && stopped && b.keep && !extra {
		b.pc.cl.put(b.pc)
		return
	}
	b.pc.c.Close()
}

// h1exchange is what a fill may ask of the exchange its response came on.
type h1exchange struct {
	pc  *h1conn
	seq uint64
	// buffered is how many body bytes came with the head: reading that
	// many from the body does not block.
	buffered int64
	extra    atomic.Bool // the origin sent bytes past Content-Length
}

// excess reports whether the origin sent more than the response's
// Content-Length (known once the body has ended).
func (ex *h1exchange) excess() bool { return ex != nil && ex.extra.Load() }

// watch calls late (once) if bytes arrive on the exchange's connection
// while it is idle after it: the origin sent more after a response the fill
// has stored. The connection is then closed.
func (ex *h1exchange) watch(late func()) {
	if ex == nil {
		return
	}
	pc, cl := ex.pc, ex.pc.cl
	cl.mu.Lock()
	if !pc.inPool || pc.seq != ex.seq || pc.watching != nil {
		// Closed, or already carrying another request.
		cl.mu.Unlock()
		return
	}
	pc.late = late
	done := make(chan struct{})
	pc.watching = done
	cl.mu.Unlock()
	go func() {
		defer close(done)
		// Blocks until bytes come, the origin closes, or the taker's
		// deadline (usable) ends it.
		_, err := pc.br.Peek(1)
		cl.mu.Lock()
		if pc.inUse {
			// Taken: usable reads what we saw.
			cl.mu.Unlock()
			return
		}
		idle := pc.inPool && cl.removeLocked(pc)
		var late func()
		if err == nil {
			// Bytes, whether the connection is still idle or was
			// just closed by expire or closeIdle.
			late, pc.late = pc.late, nil
		}
		cl.mu.Unlock()
		if idle {
			pc.c.Close()
		}
		if late != nil {
			late()
		}
	}()
}
