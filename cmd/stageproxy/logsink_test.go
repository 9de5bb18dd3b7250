package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stageproxy/stageproxy/cache"
	"github.com/stageproxy/stageproxy/proxy"
)

// TestLogSinkReopen: after logrotate moves the log away, reopen makes the
// sink write to a new file at the old name, and what was written before
// is in the moved one.
func TestLogSinkReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stageproxy.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s := newLogSink(f)
	io.WriteString(s, "before\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.reopen(path); err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "after\n")
	s.close()
	for name, want := range map[string]string{path + ".1": "before\n", path: "after\n"} {
		if b, err := os.ReadFile(name); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", filepath.Base(name), b, err, want)
		}
	}
	if err := s.reopen(filepath.Join(dir, "no-such-dir", "x.log")); err == nil {
		t.Error("reopen into a missing directory succeeded")
	}
}

// TestSIGHUPRunsOnHUP: SIGHUP reaches the watcher's onHUP (the log
// reopen) as well as re-reading the config file.
func TestSIGHUPRunsOnHUP(t *testing.T) {
	c, err := cache.New(cache.Config{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := proxy.New(proxy.Options{Cache: c, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	called := make(chan struct{})
	w := &configWatcher{
		path:  filepath.Join(t.TempDir(), "absent.conf"),
		log:   logger,
		h:     h,
		onHUP: func() { close(called) },
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { w.run(ctx, hup); close(done) }()
	hup <- os.Interrupt // any signal value: run does not look at it
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("onHUP not called within 10 s of the signal")
	}
	cancel()
	<-done
}
