package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/stageproxy/stageproxy/proxy"
)

// logFlushInterval bounds how long a buffered access-log line waits.
const logFlushInterval = 200 * time.Millisecond

// logSink buffers the log on its way to w. The access log is one line per
// request, and a write system call per line cost a measurable share of the
// cache-hit throughput; so access-log lines are flushed in batches (at
// least every logFlushInterval), while every other line (startup, warnings,
// errors) is flushed at once, as operators and test harnesses expect.
type logSink struct {
	mu sync.Mutex
	bw *bufio.Writer // protects: mu
	// file is the log file bw writes to, if any (see reopen).
	file *os.File // protects: mu
}

func newLogSink(w io.Writer) *logSink {
	s := &logSink{bw: bufio.NewWriterSize(w, 64<<10)}
	s.file, _ = w.(*os.File)
	return s
}

// reopen opens path again and writes to it from now on, closing the file
// written so far: after logrotate has moved the log away, the proxy goes on
// in a new file at the old name (SIGHUP, as Polipo and Squid operators
// expect) instead of in the moved one. On error nothing changes.
func (s *logSink) reopen(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	s.swap(f)
	return nil
}

// close flushes and closes the log file, if any.
func (s *logSink) close() { s.swap(nil) }

// swap flushes what is buffered, closes the log file written so far and
// goes on with f (or with nothing more, when f is nil).
func (s *logSink) swap(f *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bw.Flush()
	if s.file != nil {
		s.file.Close()
	}
	s.file = f
	if f != nil {
		s.bw.Reset(f)
	}
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bw.Write(p)
}

// Flush writes out what is buffered.
func (s *logSink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bw.Flush()
}

// run flushes every logFlushInterval until ctx is done, then once more.
func (s *logSink) run(ctx context.Context) {
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Flush()
			return
		case <-t.C:
			s.Flush()
		}
	}
}

// flushingHandler flushes the sink after every record that is not an
// access-log line.
type flushingHandler struct {
	slog.Handler
	sink *logSink
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Message != proxy.AccessLogMessage || r.Level > slog.LevelInfo {
		h.sink.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(as), h.sink}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.sink}
}
