package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The origin runs in a child process: the same binary re-executed with
// originChildEnv=1. That keeps its goroutines off the load generator's Go
// scheduler and its garbage off the load generator's heap, so the "direct"
// column measures an origin and a client that compete only for CPUs, exactly
// as origin, proxy and client do in the proxied columns.
const originChildEnv = "STAGEPROXY_BENCH_ORIGIN"

// originCertEnv and originKeyEnv name the origin child's TLS certificate
// and key files (see makeOriginTLS).
const (
	originCertEnv = "STAGEPROXY_BENCH_ORIGIN_CERT"
	originKeyEnv  = "STAGEPROXY_BENCH_ORIGIN_KEY"
)

// Sizes of the objects the origin serves.
const (
	size4k  = 4 << 10
	size1m  = 1 << 20
	size16m = 16 << 20
	// slowDelay is the origin's simulated latency for /slow/ paths.
	slowDelay = 500 * time.Millisecond
	// originMaxLife bounds the child's life should the parent vanish
	// without closing its stdin.
	originMaxLife = 15 * time.Minute
)

// originServer answers the benchmark's paths and counts requests per path.
//
//	/obj/4k/N, /obj/1m/N  fixed bytes, Cache-Control: max-age=3600, ETag
//	/big16m, /big16m/N    16 MiB, cacheable
//	/slow/N               4 KiB, cacheable, answered after 500 ms
//	/miss/N               4 KiB, Cache-Control: no-store
//	/_stats?path=P        requests seen for exactly P (not counted itself)
//	/_stats?prefix=P      requests seen for paths starting with P
type originServer struct {
	b4k, b1m, b16m []byte
	counts         sync.Map // path -> *atomic.Int64
}

var (
	hdrCacheable = []string{"public, max-age=3600"}
	hdrNoStore   = []string{"no-store"}
	hdrOctet     = []string{"application/octet-stream"}
	hdrLastMod   = []string{"Mon, 02 Jan 2006 15:04:05 GMT"}
)

func newOriginServer() *originServer {
	mk := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i%251)
		}
		return b
	}
	return &originServer{b4k: mk(size4k, 'a'), b1m: mk(size1m, 'b'), b16m: mk(size16m, 'c')}
}

func (o *originServer) count(path string) {
	if v, ok := o.counts.Load(path); ok {
		v.(*atomic.Int64).Add(1)
		return
	}
	v, _ := o.counts.LoadOrStore(path, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (o *originServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/_stats" {
		o.stats(w, r)
		return
	}
	o.count(p)
	switch {
	case strings.HasPrefix(p, "/obj/4k/"):
		serveBody(w, r, o.b4k, hdrCacheable, "4k-"+p[len("/obj/4k/"):])
	case strings.HasPrefix(p, "/obj/1m/"):
		serveBody(w, r, o.b1m, hdrCacheable, "1m-"+p[len("/obj/1m/"):])
	case p == "/big16m" || strings.HasPrefix(p, "/big16m/"):
		serveBody(w, r, o.b16m, hdrCacheable, "16m-"+strings.TrimPrefix(p, "/big16m"))
	case p == "/slow" || strings.HasPrefix(p, "/slow/"):
		// The origin's simulated latency, not synchronisation.
		t := time.NewTimer(slowDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		serveBody(w, r, o.b4k, hdrCacheable, "slow-"+strings.TrimPrefix(p, "/slow"))
	case strings.HasPrefix(p, "/miss/"):
		serveBody(w, r, o.b4k, hdrNoStore, "")
	default:
		http.NotFound(w, r)
	}
}

func serveBody(w http.ResponseWriter, r *http.Request, body []byte, cc []string, etag string) {
	h := w.Header()
	h["Cache-Control"] = cc
	h["Content-Type"] = hdrOctet
	if etag != "" {
		tag := `"` + etag + `"`
		h["Etag"] = []string{tag}
		h["Last-Modified"] = hdrLastMod
		if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (o *originServer) stats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var n int64
	if p := q.Get("path"); p != "" {
		if v, ok := o.counts.Load(p); ok {
			n = v.(*atomic.Int64).Load()
		}
	} else {
		prefix := q.Get("prefix")
		o.counts.Range(func(k, v any) bool {
			if strings.HasPrefix(k.(string), prefix) {
				n += v.(*atomic.Int64).Load()
			}
			return true
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "%d\n", n)
}

// runOriginChild is main for the origin child process: it prints
// "ORIGIN addr [tlsaddr]" on stdout and serves until its stdin closes. With
// originCertEnv and originKeyEnv naming PEM files it also serves the same
// paths over TLS on tlsaddr.
func runOriginChild() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(1)
	}
	handler := newOriginServer()
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	tlsAddr := ""
	if certFile, keyFile := os.Getenv(originCertEnv), os.Getenv(originKeyEnv); certFile != "" && keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "origin: TLS:", err)
			os.Exit(1)
		}
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "origin:", err)
			os.Exit(1)
		}
		tsrv := &http.Server{
			Handler:           handler,
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
		}
		tlsAddr = " " + tln.Addr().String()
		go func() {
			if err := tsrv.ServeTLS(tln, "", ""); err != nil {
				fmt.Fprintln(os.Stderr, "origin: TLS:", err)
				os.Exit(1)
			}
		}()
	}
	fmt.Printf("ORIGIN %s%s\n", ln.Addr(), tlsAddr)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	time.AfterFunc(originMaxLife, func() { os.Exit(2) })
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(1)
	}
}

// originProc is the parent's handle on the origin child.
type originProc struct {
	addr string
	// tlsAddr serves the same paths over TLS with a certificate for
	// localhost and 127.0.0.1 signed by the CA in caFile ("" when the TLS
	// setup failed; see tlsErr).
	tlsAddr string
	caFile  string
	caPool  *x509.CertPool
	tlsErr  error
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	done    chan struct{}
	stats   *http.Client
}

// startOrigin starts the origin child. It makes a CA and a server
// certificate for the TLS listener in tmp first; when that fails the origin
// serves plain HTTP only and tlsErr says why.
func startOrigin(tmp string) (*originProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), originChildEnv+"=1")
	originTLS, tlsErr := makeOriginTLS(tmp)
	if tlsErr == nil {
		cmd.Env = append(cmd.Env, originCertEnv+"="+originTLS.certFile, originKeyEnv+"="+originTLS.keyFile)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	o := &originProc{cmd: cmd, stdin: stdin, done: make(chan struct{}), tlsErr: tlsErr}
	go func() { _ = cmd.Wait(); close(o.done) }()
	lineCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lineCh <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lineCh:
		addrs, ok := strings.CutPrefix(strings.TrimSpace(line), "ORIGIN ")
		f := strings.Fields(addrs)
		if !ok || len(f) == 0 {
			o.stop()
			return nil, fmt.Errorf("origin child said %q", line)
		}
		o.addr = f[0]
		if len(f) > 1 && tlsErr == nil {
			o.tlsAddr, o.caFile, o.caPool = f[1], originTLS.caFile, originTLS.caPool
		} else if o.tlsErr == nil {
			o.tlsErr = errors.New("the origin child did not open its TLS listener")
		}
	case <-time.After(10 * time.Second):
		o.stop()
		return nil, errors.New("origin child did not start within 10s")
	}
	o.stats = &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2},
		Timeout:   10 * time.Second,
	}
	return o, nil
}

func (o *originProc) pid() int { return o.cmd.Process.Pid }

func (o *originProc) stop() {
	_ = o.stdin.Close()
	select {
	case <-o.done:
	case <-time.After(3 * time.Second):
		_ = o.cmd.Process.Kill()
		<-o.done
	}
}

func (o *originProc) query(kind, value string) (int64, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
		"http://"+o.addr+"/_stats?"+kind+"="+url.QueryEscape(value), nil)
	if err != nil {
		return 0, err
	}
	resp, err := o.stats.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// countPath returns how many requests the origin saw for exactly path.
func (o *originProc) countPath(path string) (int64, error) { return o.query("path", path) }

// countPrefix returns how many requests the origin saw for paths under prefix.
func (o *originProc) countPrefix(prefix string) (int64, error) { return o.query("prefix", prefix) }
