package proxy

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminMux serves the proxy's own pages, for requests in origin form.
func (h *Handler) adminMux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{$}", h.serveStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such page on this proxy: "+r.URL.Path+" (try /, /metrics or /healthz; proxied requests use absolute URLs)")
	})
	return mux
}

// serveAdmin serves a page of the proxy's own. Like every response it
// carries Cache-Status and Via (SPEC); nothing was looked up or forwarded.
func (h *Handler) serveAdmin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Status", cacheStatusName+"; detail=admin")
	w.Header().Set("Via", viaValue)
	h.admin.ServeHTTP(w, r)
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>stageproxy</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 12px;text-align:left;border-bottom:1px solid #ddd}</style>
</head><body>
<h1>stageproxy</h1>
<p>Up {{.Uptime}}. <a href="/metrics">metrics</a> · <a href="/healthz">healthz</a></p>
<h2>Cache</h2>
<table>
<tr><th>objects</th><td>{{.Objects}}</td></tr>
<tr><th>bytes</th><td>{{.Bytes}}</td></tr>
<tr><th>evictions</th><td>{{.Evictions}}</td></tr>
<tr><th>fills in flight</th><td>{{.Flights}}</td></tr>
</table>
<h2>Upstream</h2>
<table><tr><th>parent proxy in effect</th><td>{{.Parent}}</td></tr></table>
<h2>Configuration at startup</h2>
<p>Parent-proxy keys apply live: what is in effect is above.</p>
<table>{{range .Config}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
</body></html>
`))

// serveStatus is the status page: cache statistics and the configuration
// (which Options.Status returns without secrets).
func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	st := h.cache.Stats()
	h.mu.Lock()
	flights := len(h.flights)
	h.mu.Unlock()
	var cfg [][2]string
	if h.opts.Status != nil {
		cfg = h.opts.Status()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	statusPage.Execute(w, map[string]any{
		"Uptime":    time.Since(h.started).Round(time.Second),
		"Objects":   st.Objects,
		"Bytes":     st.Bytes,
		"Evictions": st.Evictions,
		"Flights":   flights,
		"Config":    cfg,
		"Parent":    cmp.Or(h.route().parent, "none (direct)"),
	})
}
