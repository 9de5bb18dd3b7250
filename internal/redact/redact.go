// Package redact hides passwords in text that a message or a log line
// quotes back to the user.
package redact

import "strings"

// Mask replaces a password with "xxxxx", as url.URL.Redacted does.
const Mask = "xxxxx"

// Userinfo returns s with the password of a "user:pass@" in it replaced by
// Mask, for text that may be a proxy URL typed by hand:
//
//	"http://bob:pw@10.0.0.2:3128" -> "http://bob:xxxxx@10.0.0.2:3128"
//	"bob:pw@10.0.0.2:3128"        -> "bob:xxxxx@10.0.0.2:3128"
//	"parentProxy bob:p@w@h:1"     -> "parentProxy bob:xxxxx@h:1"
//
// The password runs from the first ":" that does not start "://" to the
// last "@": the last "@", because people type "@" in passwords unencoded,
// and the first ":", because Basic credentials cannot have one in the user
// (RFC 7617 section 2). This may hide more than the password, never less.
// A user alone ("builder@h:1", a SOCKS4 user id) is not a secret and is
// kept.
func Userinfo(s string) string {
	at := strings.LastIndex(s, "@")
	for i := 0; i < at; i++ {
		if s[i] == ':' && !strings.HasPrefix(s[i:], "://") {
			return s[:i+1] + Mask + s[at:]
		}
	}
	return s
}
