package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stageproxy/stageproxy/cache"
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ Lo, Hi int }

// Options configures a Handler. The zero value of every field but Cache is
// usable.
type Options struct {
	// Cache stores responses. Required.
	Cache *cache.Cache
	// Logger receives the access log (one line per request, at info level)
	// and errors. Nil discards.
	Logger *slog.Logger
	// AllowedClients lists who may use the proxy. Empty means loopback only.
	AllowedClients []netip.Prefix
	// TunnelAllowedPorts lists the ports CONNECT may reach. Empty means
	// Polipo's default list.
	TunnelAllowedPorts []PortRange
	// MaxObjectSize is the largest body stored; larger ones stream through.
	// Zero means 32 MiB (capped at the cache size).
	MaxObjectSize int64
	// ServeStaleOnError serves a stale stored response, with a Warning-free
	// Cache-Status note, when the origin cannot be reached (Polipo's
	// relaxTransparency = maybe).
	ServeStaleOnError bool
	// ListenAddrs are the addresses the proxy listens on, so that a request
	// addressed to the proxy through itself is refused (508).
	ListenAddrs []string
	// DialContext dials origins (and, for issue 3, parents). Nil means a
	// net.Dialer with a 10 s timeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Registerer receives the proxy's metrics. Nil means a private registry.
	Registerer *prometheus.Registry
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Status, when set, returns extra lines (configuration without secrets)
	// for the status page.
	Status func() [][2]string
}

// Handler is the proxy's http.Handler.
type Handler struct {
	opts Options
}

var _ http.Handler = (*Handler)(nil)

// New builds a Handler from opts.
func New(opts Options) (*Handler, error) {
	if opts.Cache == nil {
		return nil, errors.New("proxy: Options.Cache is required")
	}
	return &Handler{opts: opts}, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented", http.StatusNotImplemented)
}

// Close releases idle upstream connections.
func (h *Handler) Close() {}
