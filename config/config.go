// Package config reads stageproxy's configuration file, which uses Polipo's
// syntax: `name = value` lines, `#` comments, values optionally in double
// quotes. A Polipo variable that stageproxy does not implement is a warning,
// so that a Polipo config file loads unchanged; any other unknown name is an
// error naming the file and line.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/stageproxy/stageproxy/internal/redact"
)

// Defaults. Sizes follow the SI/IEC convention: MB is 10^6 bytes, MiB is
// 2^20 bytes.
const (
	DefaultProxyAddress = "127.0.0.1"
	DefaultProxyPort    = 8123
	// DefaultCacheSize is 100 MB, the size of Stackato's Polipo cache.
	DefaultCacheSize = 100_000_000
	// DefaultMaxObjectSize is 32 MiB: about a third of the default cache,
	// so that one large download cannot flush everything else, and larger
	// than the wheels and tarballs that pip and npm fetch in common use.
	// When the cache is smaller it is capped at half the cache; see
	// Config.EffectiveMaxObjectSize.
	DefaultMaxObjectSize = 32 << 20
	// DefaultRelaxTransparency serves a stale stored response when the
	// origin cannot be reached, as Stackato configured Polipo.
	DefaultRelaxTransparency = "maybe"
	// DefaultSocksProxyType is Polipo's default.
	DefaultSocksProxyType = "socks5"
)

// ErrNoConfig reports that the configuration file does not exist.
var ErrNoConfig = errors.New("no config file")

// Config is a parsed configuration file. Field comments name the key.
type Config struct {
	ProxyAddress string // proxyAddress; default 127.0.0.1
	ProxyPort    int    // proxyPort; default 8123
	// AllowedClients (allowedClients) may use the proxy. Empty means
	// loopback only (127.0.0.0/8 and ::1). Single IPs become /32 or /128.
	AllowedClients []netip.Prefix
	// TunnelAllowedPorts (tunnelAllowedPorts) are the ports CONNECT may
	// reach; default Polipo's list, see DefaultTunnelAllowedPorts.
	TunnelAllowedPorts []PortRange
	// CacheSize (cacheSize, or Polipo's chunkHighMark) is the bytes the
	// cache may hold; default 100 MB.
	CacheSize int64
	// MaxObjectSize (maxObjectSize) is the largest body stored; default
	// DefaultMaxObjectSize. Use EffectiveMaxObjectSize, which applies the
	// cap at CacheSize/2.
	MaxObjectSize int64
	LogFile       string // logFile; "" means standard error
	// RelaxTransparency is Polipo's relaxTransparency: "false" (every
	// failure is an error), "maybe" (default: serve stale data when the
	// origin cannot be reached). Polipo's "true" (never revalidate) is read
	// as "maybe" with a warning.
	RelaxTransparency string

	// Parent proxy keys, kept as strings; package upstream validates them.
	ParentProxy           string // parentProxy
	ParentAuthCredentials string // parentAuthCredentials (secret)
	SocksParentProxy      string // socksParentProxy
	SocksProxyType        string // socksProxyType; default socks5
	SocksUserName         string // socksUserName
	SocksAuthCredentials  string // socksAuthCredentials (secret)
	NoProxy               string // noProxy

	// HTTPS interception (not implemented yet).
	MitmCA     string // mitmCA
	MitmHosts  string // mitmHosts
	UpstreamCA string // upstreamCA

	// Warnings are problems that do not stop the file from loading, such
	// as "FILE:LINE: polipo variable diskCacheRoot is not implemented by
	// stageproxy; ignored".
	Warnings []string

	// set records where each key got its value (the last line that set
	// it), for KeyError. nil until a key is set.
	set map[string]position
}

// position is a line of a file.
type position struct {
	file string
	line int
}

// KeyError reports that the value of key is bad, for checks made after
// Parse (package upstream checks the parent keys): a *ParseError at the
// line that set key, "FILE:LINE: key: <err>", as Parse's own errors read.
// When no line set key (a default, or a Config not read from a file) it is
// "key: <err>". err must not contain a password.
func (c *Config) KeyError(key string, err error) error {
	if pos, ok := c.set[key]; ok {
		return &ParseError{File: pos.file, Line: pos.line, Msg: key + ": " + err.Error()}
	}
	return fmt.Errorf("%s: %w", key, err)
}

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ Lo, Hi int }

// String formats r as Polipo does: "443" or "5222-5223".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// DefaultTunnelAllowedPorts returns Polipo's default tunnelAllowedPorts (from
// initHttp in Polipo's http.c): ssh, HTTP, POP, IMAP, HTTPS, rsync,
// IMAPS, POP3S, CVS, Jabber and git.
func DefaultTunnelAllowedPorts() []PortRange {
	return []PortRange{
		{22, 22}, {80, 80}, {109, 110}, {143, 143}, {443, 443}, {873, 873},
		{993, 993}, {995, 995}, {2401, 2401}, {5222, 5223}, {9418, 9418},
	}
}

// Default returns the configuration used when there is no file.
func Default() *Config {
	return &Config{
		ProxyAddress:       DefaultProxyAddress,
		ProxyPort:          DefaultProxyPort,
		TunnelAllowedPorts: DefaultTunnelAllowedPorts(),
		CacheSize:          DefaultCacheSize,
		MaxObjectSize:      DefaultMaxObjectSize,
		RelaxTransparency:  DefaultRelaxTransparency,
		SocksProxyType:     DefaultSocksProxyType,
	}
}

// Addr is the address to listen on, HOST:PORT.
func (c *Config) Addr() string {
	return net.JoinHostPort(c.ProxyAddress, strconv.Itoa(c.ProxyPort))
}

// EffectiveMaxObjectSize is MaxObjectSize capped at half of CacheSize: an
// object bigger than that would evict most of the cache to be stored. The
// cap is applied here rather than in Parse so that a --cache-size flag given
// after the file is read moves it too.
func (c *Config) EffectiveMaxObjectSize() int64 {
	return min(c.MaxObjectSize, c.CacheSize/2)
}

// StatusLines returns the configuration as name/value pairs for the status
// page. Credentials are reported only as "(set)".
func (c *Config) StatusLines() [][2]string {
	secret := func(s string) string {
		if s == "" {
			return ""
		}
		return "(set)"
	}
	ports := make([]string, len(c.TunnelAllowedPorts))
	for i, r := range c.TunnelAllowedPorts {
		ports[i] = r.String()
	}
	clients := make([]string, len(c.AllowedClients))
	for i, p := range c.AllowedClients {
		clients[i] = p.String()
	}
	allowed := strings.Join(clients, ", ")
	if allowed == "" {
		allowed = "(loopback only)"
	}
	return [][2]string{
		{"proxyAddress", c.ProxyAddress},
		{"proxyPort", strconv.Itoa(c.ProxyPort)},
		{"allowedClients", allowed},
		{"tunnelAllowedPorts", strings.Join(ports, ", ")},
		{"cacheSize", strconv.FormatInt(c.CacheSize, 10)},
		{"maxObjectSize", strconv.FormatInt(c.EffectiveMaxObjectSize(), 10)},
		{"relaxTransparency", c.RelaxTransparency},
		{"logFile", c.LogFile},
		{"parentProxy", c.ParentProxy},
		{"parentAuthCredentials", secret(c.ParentAuthCredentials)},
		{"socksParentProxy", c.SocksParentProxy},
		{"socksProxyType", c.SocksProxyType},
		{"socksUserName", c.SocksUserName},
		{"socksAuthCredentials", secret(c.SocksAuthCredentials)},
		{"noProxy", c.NoProxy},
	}
}

// ParseError is an error in a configuration file. Its message reads
// "FILE:LINE: <what>: <bad value> (want <what is accepted>)".
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Load reads and parses the file at path. A missing file gives an error that
// wraps both ErrNoConfig and fs.ErrNotExist.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNoConfig, err)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// setter stores a value into c. Its error is the "<what>: <bad value> (want
// ...)" part of a ParseError.
type setter func(c *Config, v string) error

// keys are the variables stageproxy implements. Names are case-sensitive.
var keys = map[string]setter{
	"proxyAddress": func(c *Config, v string) error {
		if err := checkHost(v); err != nil {
			return err
		}
		c.ProxyAddress = v
		return nil
	},
	"proxyPort": func(c *Config, v string) error {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("invalid port %q (want a number from 0 to 65535)", v)
		}
		c.ProxyPort = p
		return nil
	},
	"allowedClients": func(c *Config, v string) error {
		p, err := ParseClients(v)
		if err != nil {
			return err
		}
		c.AllowedClients = p
		return nil
	},
	"tunnelAllowedPorts": func(c *Config, v string) error {
		r, err := ParsePortRanges(v)
		if err != nil {
			return err
		}
		c.TunnelAllowedPorts = r
		return nil
	},
	"cacheSize":     setCacheSize,
	"chunkHighMark": setCacheSize,
	"maxObjectSize": func(c *Config, v string) error {
		n, err := parsePositiveSize(v)
		if err != nil {
			return err
		}
		c.MaxObjectSize = n
		return nil
	},
	"logFile": func(c *Config, v string) error { c.LogFile = v; return nil },
	// relaxTransparency is handled in Parse, which can add a warning.
	"relaxTransparency":     nil,
	"parentProxy":           func(c *Config, v string) error { c.ParentProxy = v; return nil },
	"parentAuthCredentials": func(c *Config, v string) error { c.ParentAuthCredentials = v; return nil },
	"socksParentProxy":      func(c *Config, v string) error { c.SocksParentProxy = v; return nil },
	"socksProxyType":        func(c *Config, v string) error { c.SocksProxyType = v; return nil },
	"socksUserName":         func(c *Config, v string) error { c.SocksUserName = v; return nil },
	"socksAuthCredentials":  func(c *Config, v string) error { c.SocksAuthCredentials = v; return nil },
	"noProxy":               func(c *Config, v string) error { c.NoProxy = v; return nil },
	"mitmCA":                func(c *Config, v string) error { c.MitmCA = v; return nil },
	"mitmHosts":             func(c *Config, v string) error { c.MitmHosts = v; return nil },
	"upstreamCA":            func(c *Config, v string) error { c.UpstreamCA = v; return nil },
}

func setCacheSize(c *Config, v string) error {
	n, err := parsePositiveSize(v)
	if err != nil {
		return err
	}
	c.CacheSize = n
	return nil
}

func parsePositiveSize(v string) (int64, error) {
	n, err := ParseSize(v)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("invalid size %q (want more than 0 bytes)", v)
	}
	return n, nil
}

// checkHost accepts an IP address (Polipo writes "::0" for all IPv6 and
// IPv4 interfaces) or a host name.
func checkHost(v string) error {
	if _, err := netip.ParseAddr(v); err == nil {
		return nil
	}
	ok := v != "" && len(v) <= 253
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid address %q (want an IP address such as 127.0.0.1 or ::0, or a host name)", v)
	}
	return nil
}

// Parse parses a configuration file's contents; name is used in messages.
// Duplicate keys: the last one wins, as in Polipo.
func Parse(name string, data []byte) (*Config, error) {
	c := Default()
	for i, line := range splitLines(data) {
		lineNo := i + 1
		fail := func(format string, args ...any) error {
			return &ParseError{File: name, Line: lineNo, Msg: fmt.Sprintf(format, args...)}
		}
		l, ok := lex(line)
		if !ok {
			continue // blank or comment
		}
		if l.err != "" {
			return nil, fail("%s", l.err)
		}
		set, implemented := keys[l.name]
		switch {
		case l.name == "relaxTransparency":
			switch strings.ToLower(l.value) {
			case "false", "no":
				c.RelaxTransparency = "false"
			case "maybe", "perhaps":
				c.RelaxTransparency = "maybe"
			case "true", "yes":
				c.RelaxTransparency = "maybe"
				c.Warnings = append(c.Warnings, fmt.Sprintf(
					"%s:%d: relaxTransparency = %s (serve stale data without revalidating) is not implemented by stageproxy; using maybe (serve stale data only when the origin cannot be reached)",
					name, lineNo, l.value))
			default:
				return nil, fail("relaxTransparency: invalid value %q (want false, maybe or true)", l.value)
			}
		case implemented:
			if err := set(c, l.value); err != nil {
				return nil, fail("%s: %v", l.name, err)
			}
			if c.set == nil {
				c.set = make(map[string]position)
			}
			c.set[l.name] = position{name, lineNo}
		case polipoOnly[l.name]:
			c.Warnings = append(c.Warnings, fmt.Sprintf(
				"%s:%d: polipo variable %s is not implemented by stageproxy; ignored", name, lineNo, l.name))
		default:
			return nil, fail("unknown variable %q (want %s)", l.name, suggest(l.name))
		}
	}
	return c, nil
}

// suggest says which names are accepted, pointing at a case mismatch when
// there is one: Polipo's names are case-sensitive.
func suggest(name string) string {
	for k := range keys {
		if strings.EqualFold(k, name) {
			return k + "; names are case-sensitive"
		}
	}
	for k := range polipoOnly {
		if strings.EqualFold(k, name) {
			return k + "; names are case-sensitive"
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	return "one of " + strings.Join(names, ", ") + ", or a Polipo variable"
}

// splitLines splits data at "\n", dropping a final empty line and each
// line's "\r".
func splitLines(data []byte) []string {
	s := string(data)
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// lexed is one `name = value` line.
type lexed struct {
	name, value string
	// comment is the trailing "# ..." text, if any, as written.
	comment string
	err     string
}

// lex reads one line. It reports ok=false for blank lines and comments.
func lex(line string) (l lexed, ok bool) {
	t := strings.TrimLeft(line, " \t")
	if strings.TrimSpace(t) == "" || strings.HasPrefix(t, "#") {
		return l, false
	}
	eq := strings.IndexByte(t, '=')
	if eq < 0 || !validName(strings.TrimRight(t[:eq], " \t")) {
		l.err = nameError(t)
		return l, true
	}
	l.name = strings.TrimRight(t[:eq], " \t")
	v, comment, err := unquote(t[eq+1:])
	if err != "" {
		if secretKeys[strings.ToLower(l.name)] {
			err = "unterminated quoted value (want a closing \"; the value is not shown)"
		}
		l.err = fmt.Sprintf("%s: %s", l.name, err)
		return l, true
	}
	l.value, l.comment = v, comment
	return l, true
}

// secretKeys hold a password, so messages never quote their values. Keys
// are lower case: a line with a mistyped case is still hidden.
var secretKeys = map[string]bool{
	"parentauthcredentials": true,
	"socksauthcredentials":  true,
	"authcredentials":       true, // Polipo's own proxy password
}

// nameError is the message for a line whose name is missing or invalid:
// "parentAuthCredentials bob:pw" (no "="), "proxy-port = 1". It quotes only
// the name, never the rest of the line, which may be a password typed
// without its "=" (or a value of a line broken in two), and it masks
// nothing else because it shows nothing else.
func nameError(t string) string {
	i := 0
	for i < len(t) && validName(t[i:i+1]) {
		i++
	}
	word, rest := t[:i], strings.TrimLeft(t[i:], " \t")
	switch {
	case word == "" && strings.HasPrefix(rest, "="):
		return "missing variable name before \"=\" (want name = value)"
	case word == "":
		return "missing variable name (want name = value; the line is not shown)"
	case rest == "" || !strings.Contains(rest, "="):
		want := "name"
		if _, ok := keys[word]; ok || polipoOnly[word] {
			want = word
		}
		return fmt.Sprintf("missing \"=\" after %s (want %s = value; the rest of the line is not shown)", quoteShort(word), want)
	default:
		r, _ := utf8.DecodeRuneInString(rest)
		return fmt.Sprintf("invalid variable name: %q after %s (want letters and digits, as in proxyPort, then \"=\"; the rest of the line is not shown)", r, quoteShort(word))
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// unquote reads a value: it removes double quotes (inside which a backslash
// escapes the next character, as in Polipo's parseAtom), stops at a "#"
// outside quotes, and trims blanks outside quotes. Several quoted pieces are
// joined, so `"a", "b"` reads as `a, b`.
func unquote(s string) (value, comment, errMsg string) {
	s = strings.TrimLeft(s, " \t")
	var b strings.Builder
	inQuote := false
	quoted := 0 // b.Len() after the last closing quote: blanks before it stay
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inQuote && ch == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case inQuote && ch == '"':
			inQuote = false
			quoted = b.Len()
		case inQuote:
			b.WriteByte(ch)
		case ch == '"':
			inQuote = true
		case ch == '#':
			comment = s[i:]
			return trimValue(b.String(), quoted), comment, ""
		default:
			b.WriteByte(ch)
		}
	}
	if inQuote {
		return "", "", fmt.Sprintf("unterminated quoted value %s (want a closing \")", quoteShort(redact.Userinfo(s)))
	}
	return trimValue(b.String(), quoted), "", ""
}

// trimValue trims trailing blanks, except those inside the quoted part that
// ends at byte keep.
func trimValue(v string, keep int) string {
	return v[:keep] + strings.TrimRight(v[keep:], " \t")
}

// quoteShort quotes s for a message, shortening it so that the message stays
// one readable line.
func quoteShort(s string) string {
	const max = 60
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
