package proxy

import (
	"strconv"
	"strings"
	"testing"
)

func TestFramingConn(t *testing.T) {
	tricky := "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" // text inside a body, not headers
	chunk := func(s string) string { return strings.ToUpper(strconvHex(len(s))) + "\r\n" + s + "\r\n" }
	tests := []struct {
		name   string
		stream string
		want   bool
	}{
		{"plain GETs", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nGET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"both fields", "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"both fields, second request", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nPOST http://a/ HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n", true},
		{"header text inside a sized body", "POST http://a/ HTTP/1.1\r\nContent-Length: " + strconvItoa(len(tricky)) + "\r\n\r\n" + tricky + "GET http://a/ HTTP/1.1\r\n\r\n", false},
		{"header text inside a chunked body", "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(tricky) + "0\r\nX-Trailer: 1\r\n\r\nGET http://a/ HTTP/1.1\r\n\r\n", false},
		{"after a chunked body", "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("hello") + "0\r\n\r\nPOST http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"tunnel bytes are not looked at", "CONNECT a:443 HTTP/1.1\r\n\r\n" + "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Feed the stream in every split position pairs of small reads
			// would produce: byte by byte catches state carried across reads.
			for _, step := range []int{1, 7, len(tt.stream)} {
				c := &framingConn{}
				for i := 0; i < len(tt.stream); i += step {
					c.scan([]byte(tt.stream[i:min(i+step, len(tt.stream))]))
				}
				if got := c.ambiguous.Load(); got != tt.want {
					t.Errorf("step %d: ambiguous = %v, want %v", step, got, tt.want)
				}
			}
		})
	}
}

func strconvHex(n int) string  { return strconv.FormatInt(int64(n), 16) }
func strconvItoa(n int) string { return strconv.Itoa(n) }
