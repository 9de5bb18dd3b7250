package mitm

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
)

// Hosts is the --mitm-hosts list: the hosts whose HTTPS stageproxy
// intercepts. An entry is an exact name (pypi.org), "*.suffix"
// (*.pythonhosted.org), which matches every name under suffix at any depth
// but not suffix itself, as in a certificate's wildcard and Squid's
// dstdomain without the leading dot; or an IP literal, matched exactly.
// Matching ignores case and a trailing dot. The zero Hosts matches
// nothing. A Hosts is immutable and safe for concurrent use.
type Hosts struct {
	entries  []string        // normalised, in the order given, for String
	exact    map[string]bool // names and canonical IP literals
	suffixes []string        // ".pythonhosted.org" for "*.pythonhosted.org"
}

// ParseHosts parses a list of entries separated by commas and/or white
// space. An empty list is the zero Hosts. An error names the first bad
// entry.
func ParseHosts(s string) (Hosts, error) {
	var h Hosts
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	for _, f := range fields {
		entry, err := parseHostEntry(f)
		if err != nil {
			return Hosts{}, err
		}
		if h.has(entry) {
			continue
		}
		h.entries = append(h.entries, entry)
		if suffix, ok := strings.CutPrefix(entry, "*"); ok {
			h.suffixes = append(h.suffixes, suffix)
			continue
		}
		if h.exact == nil {
			h.exact = make(map[string]bool)
		}
		h.exact[entry] = true
	}
	return h, nil
}

func (h Hosts) has(entry string) bool {
	for _, e := range h.entries {
		if e == entry {
			return true
		}
	}
	return false
}

// parseHostEntry normalises one entry: lower case, no trailing dot, IP
// literals canonical.
func parseHostEntry(f string) (string, error) {
	bad := fmt.Errorf("invalid host %q (want names like pypi.org or *.pythonhosted.org)", f)
	e := strings.TrimSuffix(strings.ToLower(f), ".")
	if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		e = e[1 : len(e)-1]
	}
	if ip, err := netip.ParseAddr(e); err == nil && ip.Zone() == "" {
		return ip.Unmap().String(), nil
	}
	if suffix, ok := strings.CutPrefix(e, "*."); ok {
		if !validName(suffix) {
			return "", bad
		}
		return "*." + suffix, nil
	}
	if !validName(e) {
		return "", bad
	}
	return e, nil
}

// validName reports whether s, lower case and without a trailing dot, is a
// DNS name: dot-separated labels of 1-63 letters, digits, hyphens and
// underscores (seen in real registry CNAMEs), not starting or ending with
// a hyphen, 253 bytes at most.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Match reports whether host, without a port, is in the list.
func (h Hosts) Match(host string) bool {
	if len(h.entries) == 0 {
		return false
	}
	n := strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.HasPrefix(n, "[") && strings.HasSuffix(n, "]") {
		n = n[1 : len(n)-1]
	}
	if ip, err := netip.ParseAddr(n); err == nil {
		return ip.Zone() == "" && h.exact[ip.Unmap().String()]
	}
	if h.exact[n] {
		return true
	}
	for _, s := range h.suffixes {
		if len(n) > len(s) && strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// String returns the list as ParseHosts accepts it: the normalised entries
// joined by ", ", without duplicates; "" for an empty list.
func (h Hosts) String() string { return strings.Join(h.entries, ", ") }
