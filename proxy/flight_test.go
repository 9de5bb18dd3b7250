package proxy

import (
	"io"
	"testing"
)

// The body's reading starts only once a reader has taken every byte that
// came with the head, so that the starter's first write does not compete
// with a second goroutine of the fill.
func TestFlightBodyStartsWhenAReaderWaits(t *testing.T) {
	f := newFlight("k")
	started := make(chan struct{})
	f.readBody = func() { close(started) }
	f.buf = append(f.buf, "first"...)
	r := f.newReader()

	p := make([]byte, 16)
	if n, err := r.Read(p); err != nil || string(p[:n]) != "first" {
		t.Fatalf("Read = %q, %v; want the bytes that came with the head", p[:n], err)
	}
	// Had a reader started the body already, the Once would not run this.
	notYet := false
	f.bodyStart.Do(func() { notYet = true })
	if !notYet {
		t.Fatal("the body started before any reader had to wait for it")
	}

	g := newFlight("k")
	g.readBody = func() { close(started) }
	r = g.newReader()
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(p)
		done <- err
	}()
	waitFor(t, started, "start of the body by a reader waiting for bytes")
	g.finish(nil)
	if err := <-done; err != io.EOF {
		t.Fatalf("Read after finish = %v, want EOF", err)
	}
}

// A starter that leaves without reading starts the body, which others (and
// the cache) still need.
func TestFlightBodyStartsWhenTheStarterLeaves(t *testing.T) {
	f := newFlight("k")
	started := make(chan struct{})
	f.readBody = func() { close(started) }
	f.newReader().Close()
	waitFor(t, started, "start of the body when the only reader left")
}
