package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

type headCase struct {
	name string
	in   string
	head int  // the head's length, when ok
	done bool // the scan reached the head's end
	ok   bool // and that end is known
}

func TestHeadScanner(t *testing.T) {
	const final = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
	tests := []headCase{
		{"head and body", final + "hello", len(final), true, true},
		{"head only", final, len(final), true, true},
		{"LF line ends", "HTTP/1.1 200 OK\nA: b\n\nhello", len("HTTP/1.1 200 OK\nA: b\n\n"), true, true},
		{"blank lines in the body", final + "\r\n\r\n", len(final), true, true},
		{"100 Continue first", "HTTP/1.1 100 Continue\r\n\r\n" + final + "x", len("HTTP/1.1 100 Continue\r\n\r\n" + final), true, true},
		{"103 with fields, then 100", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100\r\n\r\n" + final,
			len("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100\r\n\r\n" + final), true, true},
		{"101 is final", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nframes", len("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"), true, true},
		{"status without reason", "HTTP/1.1 204\r\n\r\n", len("HTTP/1.1 204\r\n\r\n"), true, true},
		{"spaces before the code", "HTTP/1.1   100 Continue\r\n\r\n" + final, len("HTTP/1.1   100 Continue\r\n\r\n" + final), true, true},
		{"long reason", "HTTP/1.1 200 " + strings.Repeat("r", 100) + "\r\n\r\nx", len("HTTP/1.1 200 " + strings.Repeat("r", 100) + "\r\n\r\n"), true, true},
		{"CR inside a line", "HTTP/1.1 200 OK\r\nA: \r\r\n\r\n", len("HTTP/1.1 200 OK\r\nA: \r\r\n\r\n"), true, true},
		{"incomplete", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", 0, false, false},
		{"incomplete after a 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0, false, false},
		{"not a status line", "garbage\r\n\r\nhello", 0, true, false},
		{"blank first line", "\r\n" + final, 0, true, false},
		{"code not three digits", "HTTP/1.1 20 OK\r\n\r\n", 0, true, false},
		{"code hidden past the status prefix", "HTTP/1.1" + strings.Repeat(" ", 40) + "100 Continue\r\n\r\n" + final, 0, true, false},
	}
	check := func(t *testing.T, how string, s *headScanner, tt headCase) {
		t.Helper()
		if s.done != tt.done || s.ok() != tt.ok || (tt.ok && s.n != int64(tt.head)) {
			t.Errorf("%s: scan(%q) = done %v ok %v head %d, want done %v ok %v head %d", how, tt.in, s.done, s.ok(), s.n, tt.done, tt.ok, tt.head)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var whole headScanner
			whole.scan([]byte(tt.in))
			check(t, "in one read", &whole, tt)

			var bytewise headScanner
			for i := range len(tt.in) {
				bytewise.scan([]byte{tt.in[i]})
			}
			check(t, "a byte per read", &bytewise, tt)

			for cut := 1; cut < len(tt.in); cut++ {
				var split headScanner
				split.scan([]byte(tt.in[:cut]))
				split.scan([]byte(tt.in[cut:]))
				check(t, fmt.Sprintf("split after %d bytes", cut), &split, tt)
			}
		})
	}
}

// scriptConn answers reads with next, as the test sets it, takes every
// write, and records Close (later reads go on). Only Read, Write and Close
// are called.
type scriptConn struct {
	net.Conn
	next   string
	closed bool
}

func (c *scriptConn) Close() error {
	c.closed = true
	return nil
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.next == "" {
		return 0, io.EOF
	}
	n := copy(p, c.next)
	c.next = c.next[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }

// readAll reads what sc has for wc, in reads of at most 7 bytes so that
// heads split.
func readAll(t *testing.T, wc *wireConn, sc *scriptConn, s string) {
	t.Helper()
	sc.next = s
	buf := make([]byte, 7)
	for range len(s) + 1 {
		if _, err := wc.Read(buf); err == io.EOF {
			return
		}
	}
	t.Fatalf("reading %q did not end", s)
}

func TestWireConnExchanges(t *testing.T) {
	const honest = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	sc := &scriptConn{}
	wc := newWireConn(sc)
	late := 0
	countLate := func() { late++ }

	// A request written in two parts, before any response byte, is one
	// exchange.
	first := wc.next()
	io.WriteString(wc, "GET /1 HTTP/1.1\r\n")
	io.WriteString(wc, "Host: o\r\n\r\n")
	readAll(t, wc, sc, honest)
	if b := (wireExchange{wc, first}).buffered(); b != 5 {
		t.Errorf("buffered() = %d after the whole response, want the 5 body bytes", b)
	}
	if b := (wireExchange{}).buffered(); b != 0 {
		t.Errorf("buffered() = %d for no connection, want 0", b)
	}
	if wc.excess(first, 5) || sc.closed {
		t.Errorf("excess(%d, 5) = true or closed (%v) for an honest response", first, sc.closed)
	}
	if !wc.excess(first, 4) || !sc.closed {
		t.Errorf("excess(%d, 4) = false or open (closed %v), want true and the connection closed (one byte more than 4 came)", first, sc.closed)
	}
	sc.closed = false
	wc.watch(first, 5, countLate)

	// The next request moves the connection on: what it reads is no
	// late excess of the first, which can still be checked.
	second := wc.next()
	if second != first+1 {
		t.Fatalf("next() = %d, want %d", second, first+1)
	}
	io.WriteString(wc, "GET /2 HTTP/1.1\r\nHost: o\r\n\r\n")
	readAll(t, wc, sc, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world")
	if late != 0 {
		t.Errorf("late ran %d times for a response on the next exchange", late)
	}
	if wc.excess(first, 5) {
		t.Errorf("excess(%d, 5) = true after the next exchange", first)
	}
	if !wc.excess(second, 5) {
		t.Errorf("excess(%d, 5) = false for 11 body bytes", second)
	}

	// Bytes after the check, before another request: late runs once.
	third := wc.next()
	io.WriteString(wc, "GET /3 HTTP/1.1\r\nHost: o\r\n\r\n")
	readAll(t, wc, sc, honest)
	wc.watch(third, 5, countLate)
	if late != 0 {
		t.Fatalf("late ran before any extra byte")
	}
	sc.next = " world"
	if n, err := wc.Read(make([]byte, 64)); n != 0 || !errors.Is(err, errLateBytes) || !sc.closed {
		t.Errorf("Read of extra bytes = %d, %v (closed %v), want 0, errLateBytes and the connection closed", n, err, sc.closed)
	}
	if late != 1 {
		t.Errorf("late ran %d times for extra bytes, want 1", late)
	}

	// Extra bytes read before watch: late runs at once.
	fourth := wc.next()
	io.WriteString(wc, "GET /4 HTTP/1.1\r\nHost: o\r\n\r\n")
	readAll(t, wc, sc, honest+"!")
	wc.watch(fourth, 5, countLate)
	if late != 2 {
		t.Errorf("late ran %d times in all, want 2", late)
	}

	// An exchange two requests back is no longer known: no verdict.
	io.WriteString(wc, "GET /5 HTTP/1.1\r\nHost: o\r\n\r\n")
	readAll(t, wc, sc, honest)
	io.WriteString(wc, "GET /6 HTTP/1.1\r\nHost: o\r\n\r\n")
	if wc.excess(fourth, 5) {
		t.Errorf("excess(%d, 5) = true for an exchange no longer known", fourth)
	}
}
