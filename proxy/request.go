package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/stageproxy/stageproxy/cache"
)

// reqInfo collects what the access log and the metrics report about one
// request as it passes through goproxy.
type reqInfo struct {
	outcome string // hit, miss, collapsed, revalidated, pass, error, ...
	source  string // "cache" or "upstream": where the body bytes came from
	status  int    // for CONNECT, whose response goproxy writes on the raw connection
	// intercepted marks a request read inside an intercepted tunnel,
	// which does not pass through ServeHTTP.
	intercepted bool
	start       time.Time // when the request was read

	// What answerFromCache found, so the lookup is not repeated.
	looked bool
	key    string       // primary cache key
	stored *cache.Entry // stale or unusable stored response, if any
	fwd    string       // Cache-Status fwd value for a forwarded request

	// bodyErr is why the response body failed part way (checkedBody).
	bodyErr error
	// tunnel is set once a CONNECT tunnel is open; its access-log line is
	// written when it closes.
	tunnel bool
}

type infoKey struct{}

// infoFrom returns the request's reqInfo, or a throwaway one for requests
// that did not come through ServeHTTP (goproxy's MITM loop later).
func infoFrom(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// logWriter records the status and the body bytes written, for the access
// log. It keeps the Hijacker and Flusher of the writer it wraps: goproxy
// needs the first for CONNECT.
//
// It also bounds slow clients: net/http has no per-write timeout, and an
// overall WriteTimeout would cut long downloads, so once a response is past
// what socket buffers absorb, each write pushes a deadline writeTimeout
// ahead (refreshed at most once a second); a client that stops reading
// fails the write and frees the handler.
type logWriter struct {
	http.ResponseWriter
	status       int
	bytes        int64
	writeTimeout time.Duration
	deadlineSet  time.Time // when the write deadline was last pushed; zero: never
}

// deadlineAfter is how many body bytes a response writes before its writes
// get a deadline: smaller responses never block on a live connection.
const deadlineAfter = 256 << 10

// writeSlice is the most one deadline covers, so a client must take at
// least 1 MiB a minute (17 KB/s) to keep its download. Smaller slices cost
// throughput: with 256 KiB ones, 1 MiB hits ran at 0.72x the direct origin
// instead of 0.87x (go run ./bench -only 1m).
const writeSlice = 1 << 20

func (w *logWriter) pushDeadline() {
	now := time.Now()
	if now.Sub(w.deadlineSet) < min(time.Second, w.writeTimeout/4) {
		return
	}
	w.deadlineSet = now
	http.NewResponseController(w.ResponseWriter).SetWriteDeadline(now.Add(w.writeTimeout))
}

// clearDeadline removes the deadline so that it does not outlive the
// response on a kept-alive connection.
func (w *logWriter) clearDeadline() {
	if !w.deadlineSet.IsZero() {
		http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Time{})
	}
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		noSniff(w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

// noSniff stops net/http from adding a Content-Type guessed from the body
// to a response that has none: a proxy passes the origin's fields on as
// they are (and HEAD, which has no body to guess from, would disagree
// with GET).
func noSniff(h http.Header) {
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil
	}
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		noSniff(w.Header())
	}
	if w.writeTimeout <= 0 || w.bytes+int64(len(p)) <= deadlineAfter {
		n, err := w.ResponseWriter.Write(p)
		w.bytes += int64(n)
		return n, err
	}
	// A deadline covers a whole Write call: write in slices, so that a
	// slow but live client is measured on each slice, not on 16 MiB.
	var total int
	for len(p) > 0 {
		w.pushDeadline()
		n, err := w.ResponseWriter.Write(p[:min(len(p), writeSlice)])
		total += n
		w.bytes += int64(n)
		p = p[n:]
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// ReadFrom copies a body that cannot write itself (an upstream body
// streamed through) with a pooled buffer: goproxy's io.Copy would otherwise
// allocate 32 KiB for every such response, 70% of the bytes a no-store miss
// allocated (go test -bench Miss -memprofile, proxy/).
func (w *logWriter) ReadFrom(r io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(writerOnly{w}, r, *bp)
}

// writerOnly hides a writer's ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

func (w *logWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *logWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// AccessLogMessage is the message of the access log's lines, one per
// request, so that a log sink can treat them apart from the rest (stageproxy
// serve writes them out in batches).
const AccessLogMessage = "request"

// accessLog writes the request's one access-log line. The URL is redacted:
// userinfo in a request URL is a credential.
func (h *Handler) accessLog(r *http.Request, status int, bytes int64, info *reqInfo, start time.Time) {
	target := r.Host
	if r.Method != http.MethodConnect {
		target = r.URL.Redacted()
	}
	h.log.LogAttrs(context.Background(), slog.LevelInfo, AccessLogMessage,
		slog.String("client", hostOnly(r.RemoteAddr)),
		slog.String("method", r.Method),
		slog.String("url", target),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.String("cache", info.outcome),
		slog.Duration("dur", time.Since(start).Round(time.Microsecond)),
	)
}

// selfAddrs recognises requests addressed to the proxy itself.
type selfAddrs struct {
	ports map[int]bool        // ports the proxy listens on
	ips   map[netip.Addr]bool // addresses it listens on; all local ones for a wildcard
}

func newSelfAddrs(listen []string) (selfAddrs, error) {
	s := selfAddrs{ports: map[int]bool{}, ips: map[netip.Addr]bool{}}
	for _, a := range listen {
		host, portStr, err := net.SplitHostPort(a)
		if err != nil {
			return s, err
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return s, err
		}
		s.ports[port] = true
		ip, err := netip.ParseAddr(host)
		if host == "" || host == "localhost" || (err == nil && (ip.IsUnspecified() || ip.IsLoopback())) {
			s.ips[netip.MustParseAddr("127.0.0.1")] = true
			s.ips[netip.MustParseAddr("::1")] = true
		}
		if err == nil && ip.IsUnspecified() {
			if addrs, err := net.InterfaceAddrs(); err == nil {
				for _, ia := range addrs {
					if p, err := netip.ParsePrefix(ia.String()); err == nil {
						s.ips[p.Addr().Unmap()] = true
					}
				}
			}
		} else if err == nil {
			s.ips[ip.Unmap()] = true
		}
	}
	return s, nil
}

// match reports whether r's target is one of the proxy's own addresses.
func (s selfAddrs) match(r *http.Request) bool {
	hostport := r.URL.Host
	if hostport == "" {
		hostport = r.Host
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		host, portStr = hostport, "80"
		if r.URL.Scheme == "https" {
			portStr = "443"
		}
	}
	port, _ := strconv.Atoi(portStr)
	if !s.ports[port] {
		return false
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return s.ips[netip.MustParseAddr("127.0.0.1")]
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return s.ips[ip] || (ip.IsLoopback() && s.ips[netip.MustParseAddr("127.0.0.1")])
}
