package upstream

import (
	"fmt"
	"net/netip"
	"strings"
)

// noProxyList decides which hosts bypass the parents (Config.NoProxy). It
// follows curl's NO_PROXY: "example.com" and ".example.com" both match
// example.com and every name under it, an IP matches itself, a CIDR matches
// the IP hosts inside it and "*" matches everything. Names are compared
// case-insensitively and never resolved, so a CIDR only matches hosts given
// as IP literals. Unlike Go's httpproxy, loopback is not implicitly direct:
// an operator who wants that lists 127.0.0.0/8.
type noProxyList struct {
	all      bool
	domains  []string // lower case, no leading or trailing dot
	prefixes []netip.Prefix
}

// parseNoProxy parses the entries once; an entry that is neither a name, an
// IP nor a CIDR is an error naming it.
func parseNoProxy(entries []string) (noProxyList, error) {
	var n noProxyList
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		switch {
		case e == "":
			continue
		case e == "*":
			n.all = true
			continue
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return noProxyList{}, fmt.Errorf("invalid entry %q: not a CIDR such as 10.0.0.0/8", shownAddr(raw))
			}
			n.prefixes = append(n.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(unbracket(e)); err == nil {
			ip = ip.WithZone("").Unmap()
			n.prefixes = append(n.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		d := strings.TrimPrefix(e, "*.") // the --mitm-hosts spelling
		d = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(d, "."), "."))
		if d == "" || strings.ContainsAny(d, " \t/:@[]*,") || strings.Contains(d, "..") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
			return noProxyList{}, fmt.Errorf("invalid entry %q (want host names, .domain suffixes, IPs or CIDRs separated by commas, e.g. \".local, 10.0.0.0/8\")", shownAddr(raw))
		}
		if ip, err := netip.ParseAddr(d); err == nil { // "10.0.0.1." or ".10.0.0.1"
			ip = ip.WithZone("").Unmap()
			n.prefixes = append(n.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		n.domains = append(n.domains, d)
	}
	return n, nil
}

// match reports whether host (no port; IPv6 with or without brackets) goes
// direct.
func (n noProxyList) match(host string) bool {
	if n.all {
		return true
	}
	host = unbracket(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.WithZone("").Unmap()
		for _, p := range n.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range n.domains {
		if host == d || (len(host) > len(d) && strings.HasSuffix(host, d) && host[len(host)-len(d)-1] == '.') {
			return true
		}
	}
	return false
}

// unbracket turns "[::1]" into "::1".
func unbracket(s string) string {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}
