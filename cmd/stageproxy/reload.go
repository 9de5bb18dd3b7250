package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stageproxy/stageproxy/config"
	"github.com/stageproxy/stageproxy/proxy"
	"github.com/stageproxy/stageproxy/upstream"
)

// configPollInterval is how often serve looks at its config file for a
// change: SPEC promises a change applies within 2 seconds.
const configPollInterval = 500 * time.Millisecond

// upstreamOf builds the dialer that cfg's parent-proxy keys describe, and a
// name for it without credentials; a nil dialer means direct.
func upstreamOf(cfg *config.Config) (*upstream.Dialer, string, error) {
	uc, err := upstream.FromKeys(cfg)
	if err != nil {
		return nil, "", err
	}
	if uc.HTTP == nil && uc.SOCKS == nil {
		return nil, "direct", nil
	}
	d, err := upstream.NewDialer(uc, nil)
	if err != nil {
		return nil, "", err
	}
	return d, d.String(), nil
}

// setUpstream applies d to h. A nil *upstream.Dialer must reach h as a nil
// interface, not as a typed nil.
func setUpstream(h *proxy.Handler, d *upstream.Dialer, name string) {
	if d == nil {
		h.SetUpstream(nil, "")
		return
	}
	h.SetUpstream(d, name)
}

// configWatcher applies the config file's parent-proxy keys to a running
// proxy when the file changes (it is polled, which also sees the rename
// that `upstream_proxy set` writes with) or on SIGHUP. A file that does not
// parse is logged with its line number and ignored: the last good
// configuration stays in force. Other keys take effect at the next start.
type configWatcher struct {
	path  string
	log   *slog.Logger
	h     *proxy.Handler
	last  fs.FileInfo // the file as last applied; nil when it was absent
	inUse string      // the parent in force, for the log
	// restartOnly are the file's keys at startup that a reload does not
	// apply (restartOnly), to say which of them an edit changed.
	restartOnly map[string]string
	// onHUP, if set, runs on SIGHUP before the file is re-read: the log
	// file is reopened then.
	onHUP func()
}

// liveKeys are the keys a reload applies: the parent proxy's.
var liveKeys = map[string]bool{
	"parentProxy": true, "parentAuthCredentials": true, "socksParentProxy": true,
	"socksProxyType": true, "socksUserName": true, "socksAuthCredentials": true, "noProxy": true,
}

// restartOnly returns cfg's keys that take effect only at a start, with
// their values as the status page shows them.
func restartOnly(cfg *config.Config) map[string]string {
	m := map[string]string{}
	for _, kv := range cfg.StatusLines() {
		if !liveKeys[kv[0]] {
			m[kv[0]] = kv[1]
		}
	}
	return m
}

// check re-reads the file if it changed since it was last applied, or
// always when force is set.
func (w *configWatcher) check(force bool) {
	fi, err := os.Stat(w.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Error("config file unreadable; keeping the configuration in force", "file", w.path, "err", err)
		return
	}
	if !force && sameFile(w.last, fi) {
		return
	}
	w.last = fi
	cfg := config.Default()
	if fi == nil {
		w.log.Warn("config file is gone; applying the defaults (no parent proxy)", "file", w.path)
	} else {
		if cfg, err = config.Load(w.path); err != nil {
			w.log.Error("config file not applied; keeping the configuration in force", "err", err)
			return
		}
	}
	d, name, err := upstreamOf(cfg)
	if err != nil {
		w.log.Error("config file not applied; keeping the configuration in force", "err", inFile(w.path, err))
		return
	}
	setUpstream(w.h, d, name)
	if fi != nil && w.restartOnly != nil {
		var changed []string
		for k, v := range restartOnly(cfg) {
			if w.restartOnly[k] != v {
				changed = append(changed, k)
			}
		}
		if len(changed) > 0 {
			slices.Sort(changed)
			w.log.Warn("config file re-read: these keys take effect at the next start", "keys", strings.Join(changed, ", "))
		}
	}
	if name != w.inUse {
		w.log.Info("upstream proxy changed", "from", w.inUse, "to", name)
		w.inUse = name
	} else {
		w.log.Info("config file re-read", "upstream", name)
	}
}

// sameFile reports whether a and b describe the same unchanged file.
func sameFile(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// run watches until ctx is done; hup delivers SIGHUP.
func (w *configWatcher) run(ctx context.Context, hup <-chan os.Signal) {
	t := time.NewTicker(configPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if w.onHUP != nil {
				w.onHUP()
			}
			w.check(true)
		case <-t.C:
			w.check(false)
		}
	}
}
