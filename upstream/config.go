package upstream

// Kind is the protocol spoken to a parent proxy.
type Kind string

// The kinds of parent.
const (
	HTTP    Kind = "http"
	SOCKS4  Kind = "socks4"
	SOCKS4a Kind = "socks4a"
	SOCKS5  Kind = "socks5"
)

// Parent is one parent proxy.
type Parent struct {
	Kind Kind
	// Addr is HOST:PORT (IPv6 hosts in brackets).
	Addr string
	// User and Password are the HTTP Basic or SOCKS5 (RFC 1929)
	// credentials; for SOCKS4/4a, User is the user id and Password is
	// empty. Both empty: no credentials.
	User, Password string
}

// Config is the parent-proxy configuration in force. The zero value means
// "direct": no parent.
type Config struct {
	// HTTP is the HTTP parent (Polipo's parentProxy), or nil.
	HTTP *Parent
	// SOCKS is the SOCKS parent (socksParentProxy), or nil. When both are
	// set, the HTTP parent is reached through the SOCKS parent, as in
	// Polipo.
	SOCKS *Parent
	// NoProxy lists hosts, ".domain" suffixes and CIDRs reached directly.
	NoProxy []string
}
