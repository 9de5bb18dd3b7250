package upstream

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stageproxy/stageproxy/config"
)

// FuzzParseAddr checks that ParseAddr never panics, that its errors never
// show the password, and that an accepted ADDR survives the trip through the
// config file: SetKeys, config.Edit, config.Parse, FromKeys.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"192.168.0.99:3128", "http://user:secret@10.0.0.2:3128/", "socks5h://u:p@[fd00::1]:1080",
		"socks4a://builder@h:1080", "socks4://h:1", "ftp://x", "http://u:pa@ss\"#\\ w@h:1",
		"http://:secret@h:1", "user:secret@h:1", "socks4a://u:secret@h:1", "http://u:se%0Acret@h:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseAddr(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseAddr(%q) error has several lines: %q", s, err)
			}
			// Skip passwords that also appear elsewhere in s, as
			// typed or quoted.
			pw := password(s)
			if len(pw) >= 4 && !strings.Contains(strconv.Quote(strings.Replace(s, pw, "", 1)), pw) &&
				strings.Contains(err.Error(), pw) {
				t.Fatalf("ParseAddr(%q) error %q shows the password %q", s, err, pw)
			}
		}
		// The same with a password that cannot occur by chance.
		const secret = "Zq9Secret"
		if !strings.Contains(s, secret) {
			for _, prefix := range []string{"", "http://", "socks5://", "socks4a://"} {
				in := prefix + "u:" + secret + "@" + s
				if _, err := ParseAddr(in); err != nil && strings.Contains(err.Error(), secret) {
					t.Fatalf("ParseAddr(%q) error %q shows the password", in, err)
				}
			}
		}
		if err != nil {
			return
		}
		if p.Password != "" && strings.Contains(p.String(), p.Password) && !strings.Contains(p.String(), "xxxxx") {
			t.Fatalf("ParseAddr(%q).String() = %q shows the password", s, p)
		}
		set, del := SetKeys(p, nil)
		data := config.Edit([]byte("# keep\nproxyPort = 8123\n"), set, del)
		c, err := config.Parse("f.conf", data)
		if err != nil {
			t.Fatalf("config.Parse(Edit(SetKeys(%q))) = %v\n%s", s, err, data)
		}
		got, err := FromKeys(c)
		if err != nil {
			t.Fatalf("FromKeys(Edit(SetKeys(%q))) = %v", s, err)
		}
		var back *Parent
		if p.Kind == HTTP {
			back = got.HTTP
		} else {
			back = got.SOCKS
		}
		if back == nil || *back != p || (got.HTTP != nil && got.SOCKS != nil) {
			t.Fatalf("round trip of %q: got %s, want %s", s, dump(got), p)
		}
	})
}

// password is the raw password part of an ADDR as ParseAddr splits it.
func password(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		rest = s
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}
