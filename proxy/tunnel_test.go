package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// openTunnel makes a CONNECT tunnel through p to an echo server and
// returns the client side, checked with one round trip.
func openTunnel(t *testing.T, p *testProxy, echo string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.url.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", echo, echo)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("tunnel echo = %q, %v", buf, err)
	}
	return c, br
}

func TestShutdownLetsTunnelsFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	p := newTestProxy(t, Options{TunnelAllowedPorts: []PortRange{{1, 65535}}})

	t.Run("waits for a tunnel to end", func(t *testing.T) {
		c, br := openTunnel(t, p, ln.Addr().String())
		done := make(chan error, 1)
		go func() { done <- p.h.Shutdown(context.Background()) }()
		// The tunnel still works while the shutdown waits.
		io.WriteString(c, "pong")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("tunnel during shutdown: %q, %v", buf, err)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v while a tunnel was open", err)
		default:
		}
		c.Close() // the client ends the tunnel
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not return after the tunnel ended")
		}
	})

	t.Run("closes tunnels at the deadline", func(t *testing.T) {
		_, br := openTunnel(t, p, ln.Addr().String())
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the shutdown's time is up
		if err := p.h.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown = %v, want context.Canceled", err)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Error("the tunnel is still open after Shutdown closed it")
		}
	})
}
