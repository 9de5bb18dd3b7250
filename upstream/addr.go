package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/stageproxy/stageproxy/internal/redact"
)

// schemes maps the schemes ParseAddr accepts to a Kind. socks5h ("resolve
// host names at the proxy") is what stageproxy's SOCKS5 dialer always does,
// so it is the same kind as socks5.
var schemes = map[string]Kind{
	"http":    HTTP,
	"socks4":  SOCKS4,
	"socks4a": SOCKS4a,
	"socks5":  SOCKS5,
	"socks5h": SOCKS5,
}

const wantSchemes = "want http, socks4, socks4a or socks5"

// ParseAddr parses the ADDR of `stageproxy upstream_proxy set`:
//
//	HOST:PORT                               an HTTP parent, as kato took it
//	http://[USER[:PASS]@]HOST:PORT          HTTP parent, Basic credentials
//	socks5://[USER[:PASS]@]HOST:PORT        SOCKS5, RFC 1929 credentials (socks5h is the same)
//	socks4a://[USERID@]HOST:PORT            SOCKS4a with an optional user id
//	socks4://[USERID@]HOST:PORT             SOCKS4 with an optional user id
//
// IPv6 hosts go in brackets; the port (1-65535) is required; a trailing "/"
// is accepted but no other path, query or fragment. USER and PASS may be
// percent-encoded; the last "@" ends them, so a password may hold "@", "/"
// or "#" as typed. Errors are one line that names the bad value, with the
// password replaced by "xxxxx", and says what is accepted.
func ParseAddr(s string) (Parent, error) {
	if s == "" {
		return Parent{}, errors.New("empty ADDR (want HOST:PORT, or http://, socks4://, socks4a:// or socks5:// then HOST:PORT)")
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme || !validScheme(scheme) {
		if strings.Contains(s, "@") {
			return Parent{}, fmt.Errorf("credentials in %q need a scheme (want http://USER:PASS@HOST:PORT, or HOST:PORT with -u and --password-stdin)", redact.Userinfo(s))
		}
		addr, err := parseHostPort(s, s, "HOST:PORT")
		if err != nil {
			return Parent{}, err
		}
		return Parent{Kind: HTTP, Addr: addr}, nil
	}
	kind, ok := schemes[strings.ToLower(scheme)]
	if !ok {
		return Parent{}, fmt.Errorf("unsupported scheme %q (%s)", scheme, wantSchemes)
	}
	p := Parent{Kind: kind}
	userinfo, hostPart := "", rest
	hasUserinfo := false
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		userinfo, hostPart, hasUserinfo = rest[:at], rest[at+1:], true
	}
	rawUser, rawPass, hasPass := strings.Cut(userinfo, ":")
	shown := strings.ToLower(scheme) + "://"
	if hasUserinfo {
		shown += rawUser
		if hasPass {
			shown += ":xxxxx"
		}
		shown += "@"
	}
	shown += hostPart
	want := string(kind) + "://HOST:PORT"

	hostPort := strings.TrimSuffix(hostPart, "/")
	if i := strings.IndexAny(hostPort, "/?#"); i >= 0 {
		return Parent{}, fmt.Errorf("unexpected %q after the port in %q (%s; no path, query or fragment)", hostPort[i:], shown, "want "+want)
	}
	addr, err := parseHostPort(hostPort, shown, want)
	if err != nil {
		return Parent{}, err
	}
	p.Addr = addr

	if hasUserinfo {
		if p.User, err = url.PathUnescape(rawUser); err != nil {
			return Parent{}, fmt.Errorf("invalid percent-encoding in the user of %q (want %%XX with two hex digits)", shown)
		}
		if p.Password, err = url.PathUnescape(rawPass); err != nil {
			return Parent{}, fmt.Errorf("invalid percent-encoding in the password of %q (want %%XX with two hex digits)", shown)
		}
		if hasPass && (kind == SOCKS4 || kind == SOCKS4a) {
			return Parent{}, fmt.Errorf("%s parent takes a user id, not a password (want %s://USERID@HOST:PORT)", kind, kind)
		}
		if p.User == "" && (p.Password != "" || hasPass) {
			return Parent{}, fmt.Errorf("password without a user in %q (want %s://USER:PASS@HOST:PORT)", shown, kind)
		}
	}
	if err := p.Validate(); err != nil {
		return Parent{}, err
	}
	return p, nil
}

// validScheme reports whether s is a URI scheme (RFC 3986 section 3.1), so
// that text before "://" that is not one, such as "user:pass@http", is never
// quoted as a scheme.
func validScheme(s string) bool {
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return s != ""
}

// parseHostPort checks HOST:PORT and returns it with the port in canonical
// form (no leading zeros). shown is the ADDR as messages quote it; want is
// the accepted form.
func parseHostPort(s, shown, want string) (string, error) {
	if strings.Contains(s, "://") {
		return "", fmt.Errorf("unexpected scheme in %q (want %s)", shown, want)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		switch {
		case errors.As(err, &ae) && ae.Err == "missing port in address":
			return "", fmt.Errorf("missing port in %q (want %s)", shown, want)
		case strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "["):
			return "", fmt.Errorf("IPv6 host in %q needs brackets (want %s, e.g. [fd00::1]:3128)", shown, want)
		default:
			return "", fmt.Errorf("invalid address %q (want %s)", shown, want)
		}
	}
	if port == "" {
		return "", fmt.Errorf("missing port in %q (want %s)", shown, want)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strings.ContainsAny(port, "+-") {
		return "", fmt.Errorf("invalid port %q in %q (want 1-65535)", port, shown)
	}
	if host == "" {
		return "", fmt.Errorf("missing host in %q (want %s)", shown, want)
	}
	if err := checkHost(host, strings.HasPrefix(s, "[")); err != nil {
		return "", fmt.Errorf("invalid host %q in %q (%v)", host, shown, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// parseKeyAddr checks the HOST:PORT of the parentProxy or socksParentProxy
// key. Those keys take no scheme and no credentials (credKey holds them),
// but operators write them by analogy with
// http_proxy=http://user:pass@host:port, so messages quote the value as
// shownAddr does, and never what follows a blank: it may be "user:pass"
// typed on the same line.
func parseKeyAddr(v, credKey string) (string, error) {
	if u := redact.Userinfo(v); strings.ContainsAny(u, " \t") { // not a blank in a password
		head, _, _ := strings.Cut(strings.ReplaceAll(u, "\t", " "), " ")
		return "", fmt.Errorf("unexpected text after %q (want HOST:PORT alone, with any credentials in %s; the rest is not shown)", shownAddr(head), credKey)
	}
	shown := shownAddr(v)
	want := "HOST:PORT"
	if strings.Contains(v, "@") {
		want += ", with the credentials in " + credKey
	}
	if strings.Contains(v, "://") {
		return "", fmt.Errorf("unexpected scheme in %q (want %s)", shown, want)
	}
	if strings.Contains(v, "@") {
		return "", fmt.Errorf("credentials in %q (want %s)", shown, want)
	}
	if strings.HasSuffix(shown, ":"+redact.Mask) {
		return "", fmt.Errorf("invalid port in %q (want %s, the port from 1 to 65535; one that is not a number is not shown, it may be a password)", shown, want)
	}
	return parseHostPort(v, shown, want)
}

// shownAddr is an address written by hand as messages quote it: the
// password of a "user:pass@" is masked (redact.Userinfo), and so is a port
// that is not a number, since "user:pass" typed alone reads as HOST:PORT.
// An IPv6 address without brackets is kept, for the message that says it
// needs them.
func shownAddr(v string) string {
	if strings.Contains(v, "@") {
		v = redact.Userinfo(v)
		if strings.Contains(v, redact.Mask+"@") {
			return v
		}
	}
	hostPort := v
	if scheme, rest, ok := strings.Cut(v, "://"); ok && validScheme(scheme) {
		hostPort = rest
	}
	if _, after, ok := strings.Cut(hostPort, "@"); ok { // a user alone
		hostPort = after
	}
	if strings.HasPrefix(hostPort, "[") {
		if _, after, ok := strings.Cut(hostPort, "]"); ok {
			hostPort = after
		}
	}
	i := strings.IndexByte(hostPort, ':')
	if i < 0 || strings.Trim(hostPort[i+1:], "0123456789/") == "" || looksIPv6(hostPort) {
		return v
	}
	return v[:len(v)-len(hostPort)+i+1] + redact.Mask
}

// looksIPv6 reports whether s is made of hex digits, dots and at least two
// colons, as an IPv6 address is.
func looksIPv6(s string) bool {
	return strings.Count(s, ":") >= 2 && strings.Trim(s, "0123456789abcdefABCDEF:.") == ""
}

// checkHost accepts an IP address or a host name (letters, digits, "-",
// "." and "_", which some internal names use). IPv6 addresses must have
// been written in brackets, and only they may be.
func checkHost(host string, bracketed bool) error {
	if bracketed {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return errors.New("want an IPv6 address inside the brackets")
		}
		return nil
	}
	if len(host) > 253 {
		return errors.New("want a host name of at most 253 bytes")
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return errors.New("want a host name or an IP address; IPv6 in brackets")
		}
	}
	return nil
}

// Validate checks what ParseAddr checks of a Parent built or changed by
// hand, e.g. with the credentials of `-u` and `-p`: a known Kind, a valid
// HOST:PORT, and credentials the config file and the protocol can carry.
// Its messages never contain the password.
func (p Parent) Validate() error {
	switch p.Kind {
	case HTTP, SOCKS4, SOCKS4a, SOCKS5:
	default:
		return fmt.Errorf("unsupported kind %q (%s)", string(p.Kind), wantSchemes)
	}
	if _, err := parseHostPort(p.Addr, p.Addr, "HOST:PORT"); err != nil {
		return err
	}
	if p.Password != "" && p.User == "" {
		return fmt.Errorf("password without a user for %s (want a user with the password)", p)
	}
	if err := checkCredential("user", p.User); err != nil {
		return err
	}
	if err := checkCredential("password", p.Password); err != nil {
		return err
	}
	switch p.Kind {
	case SOCKS4, SOCKS4a:
		if p.Password != "" {
			return fmt.Errorf("%s parent takes a user id, not a password (want %s://USERID@HOST:PORT)", p.Kind, p.Kind)
		}
	case HTTP, SOCKS5:
		// The config file stores "user:pass", and Basic credentials
		// are "user-id:password" (RFC 7617 section 2): a colon cannot
		// be part of the user.
		if user, _, ok := strings.Cut(p.User, ":"); ok {
			// "-u bob:pw" is a password typed into the user.
			return fmt.Errorf("user %q contains \":\" (want a user without a colon; the password may have one)", user+":"+redact.Mask)
		}
		// RFC 1929: one byte of length each.
		if p.Kind == SOCKS5 && (len(p.User) > 255 || len(p.Password) > 255) {
			return errors.New("socks5 user or password longer than 255 bytes (want at most 255, RFC 1929)")
		}
	}
	return nil
}

// checkCredential refuses control characters: the config file holds one
// value per line, and SOCKS4 ends the user id with a NUL byte. The value is
// not quoted in the message: it may be a password.
func checkCredential(what, v string) error {
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("the %s contains a control character such as a newline (want printable characters only)", what)
		}
	}
	return nil
}

// String is the form for show, logs and messages, with the password
// replaced by "xxxxx" (url.URL.Redacted): "http://user:xxxxx@10.0.0.2:3128",
// "socks5://10.0.0.3:1080", "socks4a://builder@10.0.0.4:1080". The zero
// Parent is "".
func (p Parent) String() string {
	if p.Kind == "" && p.Addr == "" {
		return ""
	}
	u := url.URL{Scheme: string(p.Kind), Host: p.Addr}
	switch {
	case p.Password != "":
		u.User = url.UserPassword(p.User, p.Password)
	case p.User != "":
		u.User = url.User(p.User)
	}
	return u.Redacted()
}
