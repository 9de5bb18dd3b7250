package upstream

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stageproxy/stageproxy/config"
)

// The config file's parent-proxy keys (Polipo's names).
const (
	keyParentProxy           = "parentProxy"
	keyParentAuthCredentials = "parentAuthCredentials"
	keySocksParentProxy      = "socksParentProxy"
	keySocksProxyType        = "socksProxyType"
	keySocksUserName         = "socksUserName"
	keySocksAuthCredentials  = "socksAuthCredentials"
	keyNoProxy               = "noProxy"
)

var (
	httpKeys  = []string{keyParentProxy, keyParentAuthCredentials}
	socksKeys = []string{keySocksParentProxy, keySocksProxyType, keySocksUserName, keySocksAuthCredentials}
)

// FromKeys builds the Config in force from the parent keys of a parsed
// config file, with Polipo's meanings:
//
//   - parentProxy HOST:PORT is the HTTP parent, and parentAuthCredentials
//     "user:pass" its Basic credentials (ignored without parentProxy, as in
//     Polipo);
//   - socksParentProxy HOST:PORT is the SOCKS parent, of socksProxyType
//     socks4, socks4a or socks5 (empty means socks5, Polipo's default);
//   - for SOCKS5, socksAuthCredentials "user:pass" (RFC 1929); Polipo 1.0's
//     socksUserName means nothing for SOCKS5 and is ignored;
//   - for SOCKS4 and SOCKS4a, socksUserName is the user id;
//     socksAuthCredentials is an error there: SOCKS4 has no password, and
//     a "user:pass" left from a socks5 parent must never be sent as the
//     user id (in clear) nor printed;
//   - noProxy is a comma or blank separated list (see ParseNoProxy).
//
// Errors are *config.ParseError values naming the file, line and key, as
// Parse's own errors do: `c.conf:3: parentProxy: missing port in "x" (want
// HOST:PORT)` (see config.Config.KeyError). They never contain a password.
func FromKeys(c *config.Config) (Config, error) {
	var cfg Config
	switch strings.ToLower(c.SocksProxyType) {
	case "", "socks4", "socks4a", "socks5":
	default:
		// Checked even without a SOCKS parent, so that the file does
		// not break only later, when someone adds one.
		return Config{}, c.KeyError(keySocksProxyType, fmt.Errorf("unsupported value %q (want socks4, socks4a or socks5)", c.SocksProxyType))
	}
	if c.ParentProxy != "" {
		addr, err := parseKeyAddr(c.ParentProxy, keyParentAuthCredentials)
		if err != nil {
			return Config{}, c.KeyError(keyParentProxy, err)
		}
		p := Parent{Kind: HTTP, Addr: addr}
		if c.ParentAuthCredentials != "" {
			var ok bool
			p.User, p.Password, ok = strings.Cut(c.ParentAuthCredentials, ":")
			if !ok {
				return Config{}, c.KeyError(keyParentAuthCredentials, errors.New(`no ":" between user and password (want "user:pass"; the value is not shown)`))
			}
		}
		if err := p.Validate(); err != nil {
			return Config{}, c.KeyError(keyParentAuthCredentials, err)
		}
		cfg.HTTP = &p
	}
	if c.SocksParentProxy != "" {
		addr, err := parseKeyAddr(c.SocksParentProxy, keySocksAuthCredentials)
		if err != nil {
			return Config{}, c.KeyError(keySocksParentProxy, err)
		}
		p := Parent{Addr: addr}
		credKey := keySocksAuthCredentials
		switch strings.ToLower(c.SocksProxyType) {
		case "", "socks5":
			p.Kind = SOCKS5
			if c.SocksAuthCredentials != "" {
				var ok bool
				p.User, p.Password, ok = strings.Cut(c.SocksAuthCredentials, ":")
				if !ok {
					return Config{}, c.KeyError(keySocksAuthCredentials, errors.New(`no ":" between user and password (want "user:pass" for socks5; the value is not shown)`))
				}
			}
		case "socks4", "socks4a":
			p.Kind = Kind(strings.ToLower(c.SocksProxyType))
			if c.SocksAuthCredentials != "" {
				// Most likely a socks5 parent's "user:pass" left
				// behind when socksProxyType was changed by hand.
				// Taking it as the user id would send the password
				// in clear to the parent and print it in show.
				return Config{}, c.KeyError(keySocksAuthCredentials, fmt.Errorf("a %s parent takes a user id, not a password (want socksUserName = USERID, or socksProxyType = socks5; the value is not shown)", p.Kind))
			}
			p.User = c.SocksUserName
			credKey = keySocksUserName
		} // other values were refused above
		if err := p.Validate(); err != nil {
			return Config{}, c.KeyError(credKey, err)
		}
		cfg.SOCKS = &p
	}
	np, err := ParseNoProxy(c.NoProxy)
	if err != nil {
		return Config{}, c.KeyError(keyNoProxy, err)
	}
	cfg.NoProxy = np
	return cfg, nil
}

// ParseNoProxy splits a noProxy list (commas and blanks both separate, as
// in NO_PROXY and Polipo's lists) into its entries: host names, ".domain"
// or "*.domain" suffixes, IP addresses, CIDRs, or "*" for everything. It
// checks them with the dialer's own parser (noproxy.go), so that what
// `upstream_proxy set --no-proxy` accepts is exactly what serve accepts. An
// empty list is nil.
func ParseNoProxy(s string) ([]string, error) {
	entries := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t'
	})
	if _, err := parseNoProxy(entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	return entries, nil
}

// SetKeys returns the config keys to set and to delete so that the file's
// parent is p, and nothing else.
//
// It replaces THE parent: setting an HTTP parent deletes the SOCKS keys and
// setting a SOCKS parent deletes the HTTP keys. kato and Polipo users run one
// parent; the "HTTP parent reached through a SOCKS parent" chain that Polipo
// allows can still be written by hand, and `set` then replaces the whole
// chain. Credentials that p does not have are deleted, so that an old
// password never outlives its parent. socksProxyType is always written,
// even for the default socks5, so that the file says what it means.
//
// noProxy is set when noProxy is non-nil (deleted when it is ""), and left
// as it is otherwise. p must be valid (ParseAddr, Parent.Validate).
func SetKeys(p Parent, noProxy *string) (set map[string]string, del []string) {
	set = make(map[string]string)
	switch p.Kind {
	case HTTP:
		set[keyParentProxy] = p.Addr
		if p.User != "" {
			set[keyParentAuthCredentials] = p.User + ":" + p.Password
		} else {
			del = append(del, keyParentAuthCredentials)
		}
		del = append(del, socksKeys...)
	default:
		set[keySocksParentProxy] = p.Addr
		set[keySocksProxyType] = string(p.Kind)
		switch {
		case p.User == "":
			del = append(del, keySocksUserName, keySocksAuthCredentials)
		case p.Kind == SOCKS5:
			set[keySocksAuthCredentials] = p.User + ":" + p.Password
			del = append(del, keySocksUserName)
		default: // the SOCKS4/4a user id is not a secret
			set[keySocksUserName] = p.User
			del = append(del, keySocksAuthCredentials)
		}
		del = append(del, httpKeys...)
	}
	if noProxy != nil {
		if *noProxy == "" {
			del = append(del, keyNoProxy)
		} else {
			set[keyNoProxy] = *noProxy
		}
	}
	return set, del
}

// DeleteKeys returns every parent key: parentProxy, parentAuthCredentials,
// the four socks keys, and noProxy too. noProxy only means something with a
// parent, and leaving it behind would let a later `set` without --no-proxy
// silently inherit a list made for another parent.
func DeleteKeys() []string {
	keys := append(append([]string{}, httpKeys...), socksKeys...)
	return append(keys, keyNoProxy)
}

// HasCredential reports whether c holds a secret: parentAuthCredentials or
// socksAuthCredentials. A SOCKS4 user id (socksUserName) is not a secret.
// Files that hold a credential are written mode 0600.
func HasCredential(c *config.Config) bool {
	return c.ParentAuthCredentials != "" || c.SocksAuthCredentials != ""
}
