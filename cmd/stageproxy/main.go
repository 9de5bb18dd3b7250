// Command stageproxy is a caching HTTP forward proxy for build and staging
// containers, a drop-in replacement for Polipo.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a graceful shutdown; with the handler
		// gone, a second one stops the process at once, as operators
		// expect of a second Ctrl-C.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
