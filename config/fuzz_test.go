package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that every error is a
// *ParseError whose message starts with the file and a valid line number.
func FuzzParse(f *testing.F) {
	f.Add([]byte(stackato))
	f.Add([]byte("proxyPort = 1 # c\n\"\nallowedClients = \"a\\\"b\", ::1\n"))
	f.Add([]byte("cacheSize = 99999999999999999999TiB\r\n=\n#\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.conf", data)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned nil, nil")
			}
			// What Edit writes, Parse reads back.
			out := Edit(data, map[string]string{"parentProxy": string(data)}, nil)
			c2, err := Parse("f.conf", out)
			if err != nil {
				t.Fatalf("Parse(Edit(ok file)) = %v", err)
			}
			want := strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(string(data))
			if c2.ParentProxy != want {
				t.Fatalf("Parse(Edit(...)).ParentProxy = %q, want %q", c2.ParentProxy, want)
			}
			return
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("Parse error %v (%T) is not a *ParseError", err, err)
		}
		lines := strings.Count(string(data), "\n") + 1
		if pe.Line < 1 || pe.Line > lines {
			t.Fatalf("Parse error at line %d of a %d-line file: %v", pe.Line, lines, err)
		}
		if !strings.HasPrefix(err.Error(), fmt.Sprintf("f.conf:%d: ", pe.Line)) {
			t.Fatalf("Parse error %q does not start with the file and line", err)
		}
	})
}

// FuzzParseSize checks that ParseSize never panics, never returns a negative
// size, and that a success is an integer with a known unit.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"100MB", "64MiB", "512KB", "104857600", "-1", "1e9", "9223372036854775807", "512k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("ParseSize(%q) error %q does not name the value", s, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, want >= 0", s, n)
		}
	})
}
