// Package proxy is stageproxy's forward-proxy handler: absolute-form HTTP
// requests answered from the cache or fetched (coalesced, streamed) from the
// origin, CONNECT tunnels to allowed ports, and the proxy's own pages
// (/, /metrics, /healthz) for requests in origin form. It is built on
// github.com/elazarl/goproxy with every dangerous default overridden.
package proxy
