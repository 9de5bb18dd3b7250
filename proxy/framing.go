package proxy

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync/atomic"
)

// net/http accepts a request that carries both Content-Length and
// Transfer-Encoding: it drops Content-Length and reads chunks (RFC 9112
// §6.1 allows that), and the handler cannot tell that the request was
// ambiguous. Such a request is the classic request-smuggling probe, and
// a proxy in front of other servers should refuse it (RFC 9112 §6.3 calls it
// an error) and close the connection. framingConn watches the bytes a
// client sends, follows the message framing from request to request, and
// flags the connection when a header block has both fields; ServeHTTP then
// answers 400 and closes.

// WrapListener returns ln with every accepted connection watched for
// ambiguous framing. Serve the proxy's http.Server (NewServer) on it.
func WrapListener(ln net.Listener) net.Listener { return framingListener{ln} }

type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

type connKey struct{}

// connContext is the http.Server's ConnContext: it makes the connection's
// framing watcher reachable from the request.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, connKey{}, fc)
	}
	return ctx
}

// ambiguousFraming reports whether the connection ctx belongs to carried a
// request with both Content-Length and Transfer-Encoding.
func ambiguousFraming(ctx context.Context) bool {
	fc, ok := ctx.Value(connKey{}).(*framingConn)
	return ok && fc.ambiguous.Load()
}

// framing states.
const (
	stHeader    = iota // reading a header block
	stBody             // skipping remaining body bytes
	stChunkSize        // reading a chunk-size line
	stChunkData        // skipping chunk data (plus its CRLF)
	stTrailer          // reading trailer lines up to the empty one
	stDone             // a tunnel, or past what we can follow: stop watching
)

// framingConn follows request framing on the bytes read from a client.
// Reads happen on one goroutine at a time (net/http's connection reader),
// so only the flag needs to be atomic.
type framingConn struct {
	net.Conn
	ambiguous atomic.Bool
	tunnel    atomic.Bool // a CONNECT was read: the rest is a tunnel
	out       coalescer

	state  int
	line   []byte // a line that began in an earlier read
	block  block  // the header block being read
	remain int64  // body or chunk bytes still to skip
}

func (c *framingConn) Write(p []byte) (int, error) {
	return c.out.write(c.Conn, p, c.tunnel.Load())
}

func (c *framingConn) Close() error {
	c.out.stop(c.Conn)
	return c.Conn.Close()
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.state != stDone {
		c.scan(p[:n])
	}
	return n, err
}

// maxBlock bounds what is held while looking for the end of a header block;
// net/http refuses larger blocks itself (431).
const maxBlock = maxHeaderBytes + 4096

func (c *framingConn) scan(b []byte) {
	for len(b) > 0 && c.state != stDone {
		switch c.state {
		case stBody, stChunkData:
			k := min(int64(len(b)), c.remain)
			b = b[k:]
			c.remain -= k
			if c.remain == 0 {
				if c.state == stBody {
					c.state = stHeader
				} else {
					c.state = stChunkSize
				}
			}
		case stHeader:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				b = nil
				if len(c.line) > maxBlock {
					c.state = stDone
				}
				continue
			}
			line := b[:i]
			if len(c.line) > 0 { // the line began in an earlier read
				c.line = append(c.line, line...)
				line = c.line
			}
			b = b[i+1:]
			c.headerLine(bytes.TrimSuffix(line, []byte("\r")))
			c.line = c.line[:0]
		case stChunkSize, stTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				b = nil
				if len(c.line) > 4096 {
					c.state = stDone
				}
				continue
			}
			c.line = append(c.line, b[:i+1]...)
			b = b[i+1:]
			line := bytes.TrimRight(c.line, "\r\n")
			c.line = c.line[:0]
			if c.state == stTrailer {
				if len(line) == 0 {
					c.state = stHeader
				}
				continue
			}
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j]
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			switch {
			case err != nil || size < 0:
				c.state = stDone // net/http will reject it
			case size == 0:
				c.state = stTrailer
			default:
				c.state, c.remain = stChunkData, size+2 // data and its CRLF
			}
		}
	}
}

// block is what the header block being read says about the body after it.
type block struct {
	started bool  // the request line was seen
	hasCL   bool  // a Content-Length field
	cl      int64 // its value, -1 when unparsable
	hasTE   bool  // a Transfer-Encoding field
	chunked bool  // ... whose value is chunked
}

// headerLine takes one line of a header block, without its line ending; at
// the empty line that ends the block it works out the framing of the body
// that follows.
func (c *framingConn) headerLine(line []byte) {
	b := &c.block
	if !b.started {
		if len(line) == 0 {
			return // blank lines before a request are ignored (RFC 9112 §2.2)
		}
		if bytes.HasPrefix(line, []byte("CONNECT ")) {
			c.tunnel.Store(true)
			c.state = stDone // the rest is a tunnel
			return
		}
		b.started = true
		return
	}
	if len(line) > 0 {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			b.hasCL, b.cl = true, -1
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil {
				b.cl = n
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			b.hasTE = true
			b.chunked = bytes.EqualFold(value, []byte("chunked"))
		}
		return
	}
	done := *b
	c.block = block{}
	switch {
	case done.hasCL && done.hasTE:
		c.ambiguous.Store(true)
		c.state = stDone
	case done.chunked:
		c.state = stChunkSize
	case done.cl > 0:
		c.state, c.remain = stBody, done.cl
	case done.hasTE:
		c.state = stDone // net/http rejects other codings
	}
}
