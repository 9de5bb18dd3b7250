package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// sizeUnits maps a lower-case unit to its multiplier. KB, MB, GB and TB are
// decimal (10^3...), KiB, MiB, GiB and TiB binary (2^10...), as in IEC
// 80000-13. A bare "k", "m" or "g" is refused: half of the tools read it as
// 1000 and half as 1024.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

const sizeWant = "want a whole number of bytes with an optional unit: KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. 100MB"

// ParseSize parses a size such as "100MB", "64MiB", "512KB" or "104857600"
// (bytes). Units are case-insensitive; KB/MB/GB/TB are decimal and
// KiB/MiB/GiB/TiB binary. Negative sizes, fractions and sizes that do not fit
// in an int64 are errors.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q (%s)", s, sizeWant)
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		switch unit {
		case "k", "m", "g", "t":
			return 0, fmt.Errorf("ambiguous size %q (want %sB for powers of 1000 or %siB for powers of 1024)",
				s, strings.ToUpper(unit), strings.ToUpper(unit))
		}
		return 0, fmt.Errorf("invalid size %q (%s)", s, sizeWant)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large (want at most %d bytes)", s, int64(math.MaxInt64))
	}
	return n * mult, nil
}

const portsWant = "want a comma list of ports and ranges from 1 to 65535, e.g. 22, 443, 5222-5223"

// ParsePortRanges parses a comma list of ports and ranges, as Polipo's
// tunnelAllowedPorts: "22, 80, 109-110". Ports are 1 to 65535 and each range
// has lo <= hi.
func ParsePortRanges(s string) ([]PortRange, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty port list (%s)", portsWant)
	}
	var out []PortRange
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, errA := parsePort(lo)
		b := a
		var errB error
		if isRange {
			b, errB = parsePort(hi)
		}
		if errA != nil || errB != nil || a > b {
			return nil, fmt.Errorf("invalid port or range %q (%s)", item, portsWant)
		}
		out = append(out, PortRange{Lo: a, Hi: b})
	}
	return out, nil
}

func parsePort(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad port")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port")
	}
	return n, nil
}

// ParseClients parses a list of IP addresses and CIDR prefixes separated by
// commas and/or blanks, as Polipo's allowedClients. A single address becomes
// a /32 or /128 prefix; a prefix is masked (10.1.2.3/8 becomes 10.0.0.0/8).
// An empty list gives nil, which means loopback only.
func ParseClients(s string) ([]netip.Prefix, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t'
	})
	var out []netip.Prefix
	for _, f := range fields {
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
			p = p.Masked()
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f)
			if err == nil && a.Zone() != "" {
				err = fmt.Errorf("zone")
			}
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("invalid client %q (want IP addresses or CIDR prefixes such as 10.0.0.0/8, separated by commas)", f)
		}
		out = append(out, p)
	}
	return out, nil
}
