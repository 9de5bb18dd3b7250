package main

// The load generator speaks HTTP/1.1 over raw TCP: requests are prebuilt
// byte slices, responses are parsed in place from a bufio.Reader (status
// line, the few headers that matter, body skipped by Content-Length or
// chunk sizes). It allocates nothing per request on the hot path, so at 64
// keep-alive connections it costs far less CPU than net/http's client; the
// CPU table printed with the results shows how much it used per phase.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one column of the table: the origin served directly or a proxy.
type target struct {
	name  string // colDirect, colSquid or colStageproxy
	addr  string // where connections go
	proxy bool   // requests in absolute form
	pid   int    // process to watch (RSS, CPU); 0 if none
	// origin is the origin's host:port, for request lines and Host.
	origin string
	// tlsConf, when set, makes this an HTTPS column: every connection
	// is a TLS client connection (to addr, or through a CONNECT to
	// connect when that is set) and requests are in origin form.
	tlsConf *tls.Config
	connect string
	// errs counts transport errors and unexpected statuses in any phase.
	errs atomic.Int64
	// firstErr records the first of them.
	errMu    sync.Mutex
	firstErr string
}

func (t *target) noteErr(format string, a ...any) {
	t.errs.Add(1)
	t.errMu.Lock()
	if t.firstErr == "" {
		t.firstErr = fmt.Sprintf(format, a...)
	}
	t.errMu.Unlock()
}

// request builds a request for path, in absolute form for proxies (origin
// form inside TLS). extra holds additional header lines, each ending in \r\n.
func (t *target) request(method, path, extra string) []byte {
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte(' ')
	if t.proxy && t.tlsConf == nil {
		b.WriteString("http://")
		b.WriteString(t.origin)
	}
	b.WriteString(path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(t.origin)
	b.WriteString("\r\nUser-Agent: stageproxy-bench/1\r\nAccept: */*\r\n")
	b.WriteString(extra)
	b.WriteString("\r\n")
	return []byte(b.String())
}

// isHit reports whether r came from the target's cache: Cache-Status
// (RFC 9211) with a hit parameter, or Squid's X-Cache: HIT.
func (t *target) isHit(r *response) bool {
	if strings.HasPrefix(strings.ToUpper(r.xCache), "HIT") {
		return true
	}
	for _, member := range strings.Split(r.cacheStatus, ",") {
		params := strings.Split(member, ";")
		if t.name == colStageproxy && !strings.EqualFold(strings.TrimSpace(params[0]), "stageproxy") {
			continue
		}
		for _, p := range params[1:] {
			if strings.EqualFold(strings.TrimSpace(p), "hit") {
				return true
			}
		}
	}
	return false
}

// response is what readResponse learns about one response.
type response struct {
	status        int
	contentLength int64 // -1 when absent
	chunked       bool
	close         bool
	bodyLen       int64
	// wantHeaders asks readResponse to keep Cache-Status and X-Cache
	// (allocates; off on the hot path).
	wantHeaders bool
	cacheStatus string
	xCache      string
}

var errHeaderTooLong = errors.New("response header line longer than the read buffer")

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

func parseDec(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// readResponse reads one response, skipping its body (none for HEAD).
func readResponse(br *bufio.Reader, r *response, head bool) error {
	want := r.wantHeaders
	for {
		*r = response{wantHeaders: want, contentLength: -1}
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errHeaderTooLong
			}
			return fmt.Errorf("reading status line: %w", err)
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return fmt.Errorf("bad status line %.60q", line)
		}
		http10 := line[7] == '0'
		st, ok := parseDec(line[9:12])
		if !ok {
			return fmt.Errorf("bad status line %.60q", line)
		}
		r.status = int(st)
		keepAlive := false
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				if errors.Is(err, bufio.ErrBufferFull) {
					return errHeaderTooLong
				}
				return fmt.Errorf("reading headers: %w", err)
			}
			if len(line) <= 2 && (line[0] == '\r' || line[0] == '\n') {
				break
			}
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return fmt.Errorf("bad header line %.60q", line)
			}
			name, val := line[:colon], trimOWS(line[colon+1:])
			switch {
			case equalFoldASCII(name, "content-length"):
				n, ok := parseDec(val)
				if !ok {
					return fmt.Errorf("bad Content-Length %q", val)
				}
				r.contentLength = n
			case equalFoldASCII(name, "transfer-encoding"):
				r.chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
			case equalFoldASCII(name, "connection"):
				lv := bytes.ToLower(val)
				if bytes.Contains(lv, []byte("close")) {
					r.close = true
				}
				if bytes.Contains(lv, []byte("keep-alive")) {
					keepAlive = true
				}
			case want && equalFoldASCII(name, "cache-status"):
				if r.cacheStatus != "" {
					r.cacheStatus += ", "
				}
				r.cacheStatus += string(val)
			case want && equalFoldASCII(name, "x-cache"):
				r.xCache = string(val)
			}
		}
		if http10 && !keepAlive {
			r.close = true
		}
		if r.status >= 100 && r.status < 200 && r.status != 101 {
			continue // interim response
		}
		break
	}
	var err error
	switch {
	case head || r.status == 204 || r.status == 304:
	case r.chunked:
		r.bodyLen, err = discardChunked(br)
	case r.contentLength >= 0:
		var n int
		n, err = br.Discard(int(r.contentLength))
		r.bodyLen = int64(n)
	default:
		r.bodyLen, err = io.Copy(io.Discard, br)
		r.close = true
	}
	if err != nil {
		return fmt.Errorf("reading body (%d bytes so far): %w", r.bodyLen, err)
	}
	return nil
}

func discardChunked(br *bufio.Reader) (int64, error) {
	var total int64
	for range 1 << 24 { // bounded: at most 16M chunks
		line, err := br.ReadSlice('\n')
		if err != nil {
			return total, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(trimOWS(line)), 16, 64)
		if err != nil || size < 0 {
			return total, fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			for range 1024 { // trailers
				line, err := br.ReadSlice('\n')
				if err != nil {
					return total, err
				}
				if len(line) <= 2 {
					return total, nil
				}
			}
			return total, errors.New("too many trailer lines")
		}
		n, err := br.Discard(int(size))
		total += int64(n)
		if err != nil {
			return total, err
		}
		if _, err := br.Discard(2); err != nil {
			return total, err
		}
	}
	return total, errors.New("too many chunks")
}

// conn is one keep-alive client connection.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(addr string, deadline time.Time) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(deadline)
	return &conn{c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

// dial opens a connection for t: plain TCP to t.addr, or for an HTTPS
// column a TLS connection (tunnelled through CONNECT when t.connect is set).
func (t *target) dial(deadline time.Time) (*conn, error) {
	if t.tlsConf == nil {
		return dial(t.addr, deadline)
	}
	c, _, err := dialTLS(t.addr, t.connect, t.tlsConf, deadline)
	return c, err
}

func (c *conn) Close() {
	if c != nil {
		_ = c.c.Close()
	}
}

// do sends req and reads the response; it returns the time to the first
// response byte and to the end of the body.
func (c *conn) do(req []byte, r *response, head bool) (ttfb, total time.Duration, err error) {
	start := time.Now()
	if _, err = c.c.Write(req); err != nil {
		return 0, 0, err
	}
	if _, err = c.br.Peek(1); err != nil {
		return 0, 0, fmt.Errorf("waiting for response: %w", err)
	}
	ttfb = time.Since(start)
	err = readResponse(c.br, r, head)
	return ttfb, time.Since(start), err
}

// fetch makes one request on a fresh connection.
func fetch(t *target, req []byte, r *response, timeout time.Duration) (ttfb, total time.Duration, err error) {
	c, err := dial(t.addr, time.Now().Add(timeout))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	return c.do(req, r, false)
}

// loadResult is what one fixed-duration load run measured.
type loadResult struct {
	reqs, bytes int64
	elapsed     time.Duration
	errs, bad   int64
	firstErr    string
	cpu         cpuUsage
}

// merge adds another round's result; CPU use is averaged by duration.
func (l *loadResult) merge(o loadResult) {
	total := l.elapsed + o.elapsed
	for i := range l.cpu {
		if i < len(o.cpu) {
			l.cpu[i] = (l.cpu[i]*l.elapsed.Seconds() + o.cpu[i]*o.elapsed.Seconds()) / total.Seconds()
		}
	}
	l.reqs += o.reqs
	l.bytes += o.bytes
	l.elapsed = total
	l.errs += o.errs
	l.bad += o.bad
	if l.firstErr == "" {
		l.firstErr = o.firstErr
	}
}

func (l loadResult) reqPerSec() float64 { return float64(l.reqs) / l.elapsed.Seconds() }
func (l loadResult) mibPerSec() float64 {
	return float64(l.bytes) / (1 << 20) / l.elapsed.Seconds()
}

type workerCounters struct {
	reqs, bytes, errs, bad atomic.Int64
	_                      [96]byte // keep workers' counters on separate cache lines
}

// runLoad keeps conns connections busy with reqs (each worker cycles
// through them from its own offset) for warm+dur, and counts what
// completed during dur. Every worker stops by warm+dur+15s at the latest.
func runLoad(t *target, reqs [][]byte, wantBody int64, conns int, warm, dur time.Duration, pids []int) loadResult {
	ctrs := make([]workerCounters, conns)
	var stop atomic.Bool
	hard := time.Now().Add(warm + dur + 15*time.Second)
	var errOnce sync.Once
	var firstErr string
	noteErr := func(s string) { errOnce.Do(func() { firstErr = s }) }
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctr := &ctrs[i]
			var c *conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			var r response
			k := i * 7
			for !stop.Load() && ctr.errs.Load() < 20 && time.Now().Before(hard) {
				if c == nil {
					var err error
					if c, err = t.dial(hard); err != nil {
						ctr.errs.Add(1)
						noteErr(err.Error())
						time.Sleep(20 * time.Millisecond) // back off before redialling
						continue
					}
				}
				req := reqs[k%len(reqs)]
				k++
				if _, _, err := c.do(req, &r, false); err != nil {
					ctr.errs.Add(1)
					noteErr(err.Error())
					c.Close()
					c = nil
					continue
				}
				if r.status != 200 || (wantBody >= 0 && r.bodyLen != wantBody) {
					if ctr.bad.Add(1) == 1 {
						noteErr(fmt.Sprintf("status %d, body %d bytes", r.status, r.bodyLen))
					}
				}
				ctr.reqs.Add(1)
				ctr.bytes.Add(r.bodyLen)
				if r.close {
					c.Close()
					c = nil
				}
			}
		}(i)
	}
	sum := func() (reqs, bytes int64) {
		for i := range ctrs {
			reqs += ctrs[i].reqs.Load()
			bytes += ctrs[i].bytes.Load()
		}
		return
	}
	time.Sleep(warm)
	r0, b0 := sum()
	cpu0 := readCPU(pids)
	t0 := time.Now()
	time.Sleep(dur)
	r1, b1 := sum()
	cpu1 := readCPU(pids)
	elapsed := time.Since(t0)
	stop.Store(true)
	wg.Wait()
	res := loadResult{reqs: r1 - r0, bytes: b1 - b0, elapsed: elapsed, firstErr: firstErr}
	res.cpu = cpu1.sub(cpu0, elapsed)
	for i := range ctrs {
		res.errs += ctrs[i].errs.Load()
		res.bad += ctrs[i].bad.Load()
	}
	return res
}

// burst opens n connections, then sends req on all of them at once and
// waits for every response. It returns the statuses' error summary and the
// slowest response time.
func burst(t *target, req []byte, wantBody int64, n int, timeout time.Duration) (slowest time.Duration, errs int, firstErr string) {
	deadline := time.Now().Add(timeout)
	conns := make([]*conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := dial(t.addr, deadline)
		if err != nil {
			return 0, n, err.Error()
		}
		conns = append(conns, c)
	}
	start := make(chan struct{})
	type out struct {
		d   time.Duration
		err string
	}
	outs := make(chan out, n)
	for _, c := range conns {
		go func(c *conn) {
			<-start
			var r response
			_, d, err := c.do(req, &r, false)
			switch {
			case err != nil:
				outs <- out{d, err.Error()}
			case r.status != 200 || r.bodyLen != wantBody:
				outs <- out{d, fmt.Sprintf("status %d, body %d bytes", r.status, r.bodyLen)}
			default:
				outs <- out{d, ""}
			}
		}(c)
	}
	close(start)
	for range n {
		o := <-outs
		slowest = max(slowest, o.d)
		if o.err != "" {
			errs++
			if firstErr == "" {
				firstErr = o.err
			}
		}
	}
	return slowest, errs, firstErr
}
