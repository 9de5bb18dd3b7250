package proxy

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// recordingConn records what is written to it and signals each write.
type recordingConn struct {
	net.Conn
	writes chan []byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes <- bytes.Clone(p)
	return len(p), nil
}

func TestCoalescerHoldsAFullBuffer(t *testing.T) {
	tests := []struct {
		name      string
		tunnel    bool
		firstSize int
		wantHeld  bool
	}{
		{"full net/http buffer is held", false, coalesceSize, true},
		{"other sizes go out at once", false, 100, false},
		{"tunnel bytes go out at once", true, coalesceSize, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &recordingConn{writes: make(chan []byte, 4)}
			// Long enough that the check below sees the bytes still
			// held however slowly it runs; the delayed send is then
			// brought forward by hand.
			w := coalescer{delay: time.Hour}
			defer w.stop(c)
			if n, err := w.write(c, make([]byte, tt.firstSize), tt.tunnel); n != tt.firstSize || err != nil {
				t.Fatalf("write = %d, %v", n, err)
			}
			if got := len(c.writes) == 0; got != tt.wantHeld {
				t.Fatalf("held = %v, want %v", got, tt.wantHeld)
			}
			if !tt.wantHeld {
				return
			}
			// Nothing follows: the timer sends the held bytes on their
			// own.
			w.mu.Lock()
			w.timer.Reset(0)
			w.mu.Unlock()
			select {
			case b := <-c.writes:
				if len(b) != coalesceSize {
					t.Errorf("delayed send of %d bytes, want %d", len(b), coalesceSize)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("held bytes were never sent")
			}
		})
	}
}

// TestCoalescerJoinsWrites: over a real connection, a full buffer and the
// write after it arrive complete and in order, and the byte counts the
// writer sees are its own.
func TestCoalescerJoinsWrites(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	first, second := strings.Repeat("a", coalesceSize), strings.Repeat("b", 300)
	var w coalescer
	if n, err := w.write(c, []byte(first), false); n != len(first) || err != nil {
		t.Fatalf("first write = %d, %v", n, err)
	}
	if n, err := w.write(c, []byte(second), false); n != len(second) || err != nil {
		t.Fatalf("second write = %d, %v", n, err)
	}
	w.stop(c)
	c.Close()
	if s := <-got; s != first+second {
		t.Errorf("received %d bytes, want the %d written, in order", len(s), len(first+second))
	}
}
