package proxy

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the connection-specific header fields of RFC 9110 §7.6.1
// (plus Proxy-Connection, which curl and old browsers send, and
// Proxy-Authenticate/Proxy-Authorization, which belong to one hop of a proxy
// chain). A proxy must not forward them, and a cache must not store them
// (RFC 9111 §3.1).
var hopByHop = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes the hop-by-hop fields from h: first those that the
// Connection field names (RFC 9110 §7.6.1), then the fixed list.
func removeHopByHop(h http.Header) {
	for _, line := range h["Connection"] {
		for _, name := range strings.Split(line, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		delete(h, name) // the list is in canonical form already
	}
}

// viaValue is what stageproxy adds to Via (RFC 9110 §7.6.3), in requests it
// forwards and responses it returns.
const viaValue = "1.1 stageproxy"

// receivedVia is the Via entry for a request stageproxy forwards: its
// protocol is the one the request was received in (RFC 9110 §7.6.3), 1.0
// for an HTTP/1.0 client.
func receivedVia(r *http.Request) string {
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		return "1.0 stageproxy"
	}
	return viaValue
}

// maxViaHops bounds how many stageproxy hops a request may already carry:
// chains of a few (node proxy → core proxy, as Stackato deployed Polipo) are
// fine; a request that went round more often is looping.
const maxViaHops = 8

// viaHops counts the stageproxy entries in a Via field.
func viaHops(h http.Header) int {
	n := 0
	for _, line := range h["Via"] {
		n += strings.Count(line, "stageproxy")
	}
	return n
}
