package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stageproxy/stageproxy/cache"
)

// metrics are the proxy's Prometheus series, served at /metrics.
type metrics struct {
	requests         *prometheus.CounterVec // by outcome
	hits             prometheus.Counter
	misses           prometheus.Counter
	revalidations    prometheus.Counter
	stored           prometheus.Counter
	servedBytes      *prometheus.CounterVec // by source: cache, upstream
	upstreamRequests prometheus.Counter
	upstreamErrors   prometheus.Counter

	// The series every hit touches, resolved once: a label lookup hashes
	// its values on each call.
	requestsHit     prometheus.Counter
	servedFromCache prometheus.Counter
}

// countRequest counts a finished request and the body bytes it was sent.
func (m *metrics) countRequest(outcome, source string, bytes int64) {
	if outcome == "hit" {
		m.requestsHit.Inc()
	} else {
		m.requests.WithLabelValues(outcome).Inc()
	}
	switch source {
	case "":
	case "cache":
		m.servedFromCache.Add(float64(bytes))
	default:
		m.servedBytes.WithLabelValues(source).Add(float64(bytes))
	}
}

func newMetrics(reg prometheus.Registerer, c *cache.Cache) *metrics {
	f := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "stageproxy", Name: name, Help: help})
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stageproxy", Name: "requests_total",
			Help: "Requests handled, by outcome (hit, miss, collapsed, revalidated, pass, error, forbidden, loop, admin).",
		}, []string{"outcome"}),
		hits:          f("cache_hits_total", "Requests answered from the cache without contacting the origin."),
		misses:        f("cache_misses_total", "Cacheable requests that found nothing usable in the cache."),
		revalidations: f("cache_revalidations_total", "Stale or request-forced entries validated with the origin."),
		stored:        f("cache_stores_total", "Responses stored in the cache."),
		servedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stageproxy", Name: "served_bytes_total",
			Help: "Response body bytes sent to clients, by source (cache, upstream).",
		}, []string{"source"}),
		upstreamRequests: f("upstream_requests_total", "Requests sent to origins."),
		upstreamErrors:   f("upstream_errors_total", "Origin fetches that failed (connect, timeout, cut-short body)."),
	}
	reg.MustRegister(m.requests, m.hits, m.misses, m.revalidations, m.stored, m.servedBytes, m.upstreamRequests, m.upstreamErrors,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "stageproxy", Name: "cache_evictions_total", Help: "Objects evicted to make room."},
			func() float64 { return float64(c.Stats().Evictions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "stageproxy", Name: "cache_bytes", Help: "Bytes held by the cache (headers and bodies)."},
			func() float64 { return float64(c.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "stageproxy", Name: "cache_objects", Help: "Objects held by the cache."},
			func() float64 { return float64(c.Stats().Objects) }),
	)
	m.requestsHit = m.requests.WithLabelValues("hit")
	m.servedFromCache = m.servedBytes.WithLabelValues("cache")
	return m
}
