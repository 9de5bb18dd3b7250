package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stageproxy/stageproxy/cache"
	"github.com/stageproxy/stageproxy/config"
	"github.com/stageproxy/stageproxy/proxy"
)

// The client-side limits of the HTTP server are proxy.NewServer's.
const (
	// shutdownTimeout is how long transfers in flight may take to finish
	// after SIGTERM or SIGINT.
	shutdownTimeout = 30 * time.Second
	// memoryHeadroom is added to the cache size (plus an eighth) for the
	// memory limit: connection buffers and the runtime. Fills in flight
	// need none, they count against the cache (cache.Reserve). Less than
	// this and the collector runs so often that HTTPS hits on a full cache
	// lose a third of their rate (go run ./bench -only ws,https4k: 0.57x
	// against 0.85x the direct origin with cacheSize/16 + 8 MiB); with it,
	// peak RSS after the working set fell from 130-131 MiB to 123-124.
	memoryHeadroom = 8 << 20
)

// serveFlags are serve's flags as typed.
type serveFlags struct {
	listen        string
	cacheSize     string
	maxObjectSize string
	logFile       string
	logFileSet    bool // --log-file given, even as "" (standard error)
	mitmCA        string
	mitmHosts     string
	upstreamCA    string
}

// serveOptions are serve's dependencies and validated input. Zero sizes
// and empty strings mean "as in the config file".
type serveOptions struct {
	stderr         io.Writer
	getenv         func(string) string
	setMemoryLimit func(int64) int64 // debug.SetMemoryLimit
	// setLogDefault is slog.SetDefault: it also sends the standard log
	// package's output (net/http's Transport writes there, e.g. about an
	// origin that sent bytes nobody asked for) into the proxy's log.
	setLogDefault func(*slog.Logger)

	configPath     string
	configExplicit bool // named by --config or $STAGEPROXY_CONFIG: must exist

	listenHost    string
	listenPort    int
	listenSet     bool
	cacheSize     int64
	maxObjectSize int64
	logFile       string
	logFileSet    bool
	mitmCA        string
	mitmHosts     string
	upstreamCA    string
}

func newServeCmd(g *globals) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--listen HOST:PORT] [--cache-size SIZE] [--max-object-size SIZE] [--log-file FILE]",
		Short: "run the caching proxy",
		Long: `Serve runs the proxy until SIGTERM or SIGINT, then lets transfers in flight
finish (at most 30 s) and exits 0.

The configuration file (Polipo's syntax) is read first; flags override it.
When the default file ` + defaultConfigPath + ` does not exist, serve runs
on defaults; a file named by --config or $STAGEPROXY_CONFIG must exist.

The first log line names the address listened on, e.g.
"listening on 127.0.0.1:40123", so that --listen 127.0.0.1:0 can be used to
pick a free port.

SIZE is a number of bytes with an optional unit: KB, MB, GB (powers of 1000)
or KiB, MiB, GiB (powers of 1024), e.g. 100MB or 64MiB.`,
		Example: `  stageproxy serve
  stageproxy serve --config ./stageproxy.conf --listen 0.0.0.0:8123
  stageproxy serve --listen 127.0.0.1:0 --cache-size 200MB --max-object-size 64MiB`,
		Args: cobra.NoArgs,
		RunE: g.runE(func(cmd *cobra.Command, args []string) error {
			f.logFileSet = cmd.Flags().Changed("log-file")
			path, explicit := g.configPath()
			opts, err := newServeOptions(f, path, explicit, g.stderr, g.getenv)
			if err != nil {
				return &usageError{err}
			}
			return serveRun(cmd.Context(), opts)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "address to listen on, HOST:PORT (overrides proxyAddress and proxyPort; port 0 picks a free port)")
	fl.StringVar(&f.cacheSize, "cache-size", "", "bytes the cache may hold, SIZE (overrides cacheSize; default 100MB)")
	fl.StringVar(&f.maxObjectSize, "max-object-size", "", "largest response body stored, SIZE (overrides maxObjectSize; default 32MiB, at most half the cache)")
	fl.StringVar(&f.logFile, "log-file", "", "append the log to FILE instead of standard error (overrides logFile)")
	fl.StringVar(&f.mitmCA, "mitm-ca", "", "`DIR` of the CA that 'stageproxy ca init' made: intercept HTTPS to --mitm-hosts with it")
	fl.StringVar(&f.mitmHosts, "mitm-hosts", "", "hosts whose HTTPS is intercepted and cached: names and *.suffix, comma-separated")
	fl.StringVar(&f.upstreamCA, "upstream-ca", "", "PEM file of CAs to trust for origins, besides the system roots")
	return cmd
}

// newServeOptions validates serve's flags. It does no I/O.
func newServeOptions(f serveFlags, configPath string, configExplicit bool, stderr io.Writer, getenv func(string) string) (*serveOptions, error) {
	opts := &serveOptions{
		stderr:         stderr,
		getenv:         getenv,
		setMemoryLimit: debug.SetMemoryLimit,
		setLogDefault:  slog.SetDefault,
		configPath:     configPath,
		configExplicit: configExplicit,
		logFile:        f.logFile,
		logFileSet:     f.logFileSet,
		mitmCA:         f.mitmCA,
		mitmHosts:      f.mitmHosts,
		upstreamCA:     f.upstreamCA,
	}
	if f.listen != "" {
		host, port, err := net.SplitHostPort(f.listen)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("--listen: invalid address %q (want HOST:PORT, e.g. 127.0.0.1:8123, [::1]:8123 or 127.0.0.1:0)", f.listen)
		}
		opts.listenHost, opts.listenPort, opts.listenSet = host, p, true
	}
	for _, s := range []struct {
		flag, value string
		dst         *int64
	}{
		{"--cache-size", f.cacheSize, &opts.cacheSize},
		{"--max-object-size", f.maxObjectSize, &opts.maxObjectSize},
	} {
		if s.value == "" {
			continue
		}
		n, err := config.ParseSize(s.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.flag, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: invalid size %q (want more than 0 bytes)", s.flag, s.value)
		}
		*s.dst = n
	}
	return opts, nil
}

// loadConfig reads the config file, or returns the defaults when the default
// file does not exist.
func (o *serveOptions) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(o.configPath)
	if errors.Is(err, config.ErrNoConfig) && !o.configExplicit {
		return config.Default(), nil
	}
	if err != nil {
		var pe *config.ParseError
		if errors.As(err, &pe) {
			return nil, err // already "FILE:LINE: ..."
		}
		return nil, fmt.Errorf("config %s: %w (check --config and $STAGEPROXY_CONFIG)", o.configPath, err)
	}
	return cfg, nil
}

// apply overrides cfg with the flags that were given.
func (o *serveOptions) apply(cfg *config.Config) {
	if o.listenSet {
		cfg.ProxyAddress, cfg.ProxyPort = o.listenHost, o.listenPort
	}
	if o.cacheSize != 0 {
		cfg.CacheSize = o.cacheSize
	}
	if o.maxObjectSize != 0 {
		cfg.MaxObjectSize = o.maxObjectSize
	}
	if o.logFileSet {
		cfg.LogFile = o.logFile
	}
	if o.mitmCA != "" {
		cfg.MitmCA = o.mitmCA
	}
	if o.mitmHosts != "" {
		cfg.MitmHosts = o.mitmHosts
	}
	if o.upstreamCA != "" {
		cfg.UpstreamCA = o.upstreamCA
	}
}

// serveRun runs the proxy until ctx is done, then shuts it down gracefully
// and returns nil.
func serveRun(ctx context.Context, opts *serveOptions) error {
	// The config watcher compares the file with this, taken before it is
	// read: an edit made while serve starts is then applied, not missed.
	configInfo, _ := os.Stat(opts.configPath)
	cfg, err := opts.loadConfig()
	if err != nil {
		return err
	}
	fileRestartOnly := restartOnly(cfg) // before the flags: the watcher compares files
	opts.apply(cfg)
	intercept, upstreamRoots, err := interceptOptions(cfg)
	if err != nil {
		return err
	}

	logOut := opts.stderr
	if cfg.LogFile != "" {
		// The directory is not created: a missing one is more likely a
		// typo than a wish.
		f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w (check logFile or --log-file)", err)
		}
		logOut = f // the sink closes it
	}
	sink := newLogSink(logOut)
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	sinkDone := make(chan struct{})
	go func() { sink.run(sinkCtx); close(sinkDone) }()
	defer func() { stopSink(); <-sinkDone; sink.close() }() // the last lines reach the log before it closes
	logger := slog.New(flushingHandler{slog.NewTextHandler(sink, nil), sink})
	opts.setLogDefault(logger)

	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen: %w (check --listen or proxyAddress/proxyPort)", err)
	}
	addr := ln.Addr().String()

	maxObject := cfg.EffectiveMaxObjectSize()
	c, err := cache.New(cache.Config{MaxBytes: cfg.CacheSize, MaxObjectBytes: maxObject})
	if err != nil {
		ln.Close()
		return fmt.Errorf("create cache: %w", err)
	}

	listenAddrs := []string{addr}
	if cfg.ProxyPort != 0 && cfg.Addr() != addr {
		listenAddrs = append(listenAddrs, cfg.Addr())
	}
	ports := make([]proxy.PortRange, len(cfg.TunnelAllowedPorts))
	for i, r := range cfg.TunnelAllowedPorts {
		ports[i] = proxy.PortRange{Lo: r.Lo, Hi: r.Hi}
	}
	// The handler dials origins directly: it never reads HTTP_PROXY or
	// HTTPS_PROXY from this process's environment, which in a staging
	// container usually points at this very proxy.
	h, err := proxy.New(proxy.Options{
		Cache:              c,
		Logger:             logger,
		AllowedClients:     cfg.AllowedClients,
		TunnelAllowedPorts: ports,
		MaxObjectSize:      maxObject,
		ServeStaleOnError:  cfg.RelaxTransparency != "false",
		ListenAddrs:        listenAddrs,
		Status:             cfg.StatusLines,
		Intercept:          intercept,
		UpstreamRoots:      upstreamRoots,
	})
	if err != nil {
		ln.Close()
		c.Close()
		return fmt.Errorf("create proxy: %w", err)
	}
	parent, parentName, err := upstreamOf(cfg)
	if err != nil {
		ln.Close()
		c.Close()
		return usageErrorf("%s", inFile(opts.configPath, err))
	}
	setUpstream(h, parent, parentName)

	// The first log line names the address: test suites start the proxy
	// with --listen 127.0.0.1:0 and read the port from it.
	logger.Info("listening on "+addr, "addr", addr)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	logger.Info("upstream proxy", "parent", parentName)
	logger.Info("cache", "cacheSize", cfg.CacheSize, "maxObjectSize", maxObject)
	if intercept != nil {
		logger.Info("intercepting HTTPS", "hosts", cfg.MitmHosts, "ca", cfg.MitmCA)
	}
	if maxObject < cfg.MaxObjectSize {
		logger.Warn("maxObjectSize is capped at half the cache", "maxObjectSize", cfg.MaxObjectSize, "cacheSize", cfg.CacheSize, "largest body stored", maxObject)
	}

	// Parent-proxy changes apply live: `upstream_proxy set` on a running
	// proxy keeps its cache (Polipo needed a restart that emptied it).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watcher := &configWatcher{path: opts.configPath, log: logger, h: h, inUse: parentName, restartOnly: fileRestartOnly}
	if cfg.LogFile != "" {
		watcher.onHUP = func() {
			if err := sink.reopen(cfg.LogFile); err != nil {
				logger.Error("log file not reopened; still writing to the one open", "file", cfg.LogFile, "err", err)
				return
			}
			logger.Info("log file reopened", "file", cfg.LogFile)
		}
	}
	watcher.last = configInfo
	go watcher.run(watchCtx, hup)
	// Bound the heap: the cache holds up to CacheSize bytes, ristretto's
	// bookkeeping and responses being filled add to it. With GOGC=100
	// alone the heap grows to twice the live data (229 MiB RSS measured
	// with a 100 MB cache after a 400 MiB working set); a soft limit just
	// above the cache makes the GC collect the evicted objects instead,
	// at the cost of more GC work only while the cache is full and
	// churning. GOMEMLIMIT, when set, is the operator's choice and wins.
	if opts.getenv("GOMEMLIMIT") == "" {
		limit := memoryLimit(cfg.CacheSize)
		opts.setMemoryLimit(limit)
		logger.Info("memory limit set", "bytes", limit)
	}

	srv := proxy.NewServer(h, logger)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(proxy.WrapListener(ln)) }()

	select {
	case err := <-served:
		h.Close()
		c.Close()
		return fmt.Errorf("serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down; a second signal stops at once", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("transfers still in flight after the shutdown timeout; closing them", "err", err)
		srv.Close()
	}
	<-served // http.ErrServerClosed, at once after Shutdown began
	// CONNECT tunnels were hijacked from the server: wait for them too,
	// within the same bound.
	if err := h.Shutdown(sctx); err != nil {
		logger.Warn("tunnels still open after the shutdown timeout; closing them", "err", err)
	}
	h.Close()
	c.Close()
	logger.Info("stopped")
	return nil
}

// memoryLimit is the soft memory limit for a cache of cacheSize bytes:
// cacheSize + cacheSize/8 + memoryHeadroom, saturating at math.MaxInt64.
func memoryLimit(cacheSize int64) int64 {
	if cacheSize > (math.MaxInt64-memoryHeadroom)/2 {
		return math.MaxInt64
	}
	return cacheSize + cacheSize/8 + memoryHeadroom
}
