package proxy

import (
	"log/slog"
	"net/http"
	"time"
)

// Limits of the client side, applied by NewServer.
const (
	readHeaderTimeout = 10 * time.Second
	clientIdleTimeout = 120 * time.Second
	// maxHeaderBytes bounds a request's header block; a larger one gets 431
	// from net/http before it reaches the handler.
	maxHeaderBytes = 64 << 10
)

// NewServer returns the http.Server that serves h to clients, with the
// limits a proxy facing untrusted clients needs: a bounded header read and
// header size, idle keep-alive connections closed, and net/http's own error
// log sent to logger at debug level. There is no overall read or write
// timeout, since a download may legitimately take long; slow clients are
// bounded per write instead (see logWriter). Serve it on WrapListener's
// listener so that ambiguous request framing is refused.
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       clientIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		ConnContext:       connContext,
	}
}
