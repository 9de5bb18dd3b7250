// Command bench measures stageproxy on loopback against the origin served
// directly and against Squid, and prints a markdown table of absolute numbers
// and ratios. Run it with `make bench` (or `go run ./bench -h` for flags).
//
// What runs where:
//
//   - The origin is this same binary re-executed as a child process
//     (STAGEPROXY_BENCH_ORIGIN=1), so its goroutines are scheduled apart from
//     the load generator's; see origin.go for its paths.
//   - stageproxy is built with `go build ./cmd/stageproxy` into a temporary
//     directory and started with `serve --listen 127.0.0.1:0 --config
//     empty.conf` and a minimal environment (no *_PROXY variables).
//   - Squid (installed with apt-get when absent) runs as a memory-only
//     forward proxy with a generated configuration; see squid.go.
//   - The load generator (loadgen.go) speaks HTTP/1.1 over raw keep-alive
//     TCP connections; a second table shows how many cores it, the origin
//     and the proxy used during each load phase, to tell whether the client
//     or the machine was the bottleneck.
//
// HTTPS interception (https.go): the origin child also serves its paths
// over TLS with a certificate from a CA the bench makes, and stageproxy runs
// with --mitm-ca (from its own `ca init`), --mitm-hosts
// localhost,*.bench.test and --upstream-ca for that CA. The https4k and
// https1m phases load hits inside CONNECT tunnels (the "direct" column is
// the origin's TLS listener) and divide them by the same column's
// plain-HTTP hits; the leaf phase times CONNECT + TLS handshake to new
// host names against a repeat one. They run last, after the working set.
//
// The working-set check: after 400 distinct 1 MiB objects are fetched once,
// the newest 100 are requested newest first with "Cache-Control:
// only-if-cached" (RFC 9111 §5.2.1.7). A cache that honours it answers a miss
// with 504 and stores nothing, so the check cannot disturb what it measures.
// A cache that ignores it fetches the object and evicts its least recently
// used entry; going newest first, that entry is always one already counted
// (every survivor checked so far was just touched, and the survivors of an
// LRU are a contiguous run of the newest objects), so the count stays right.
// The origin fetches the check caused are reported in a note.
//
// Exit status: 0 when the run completed, even with targets missed (they are
// marked "below target"); 1 when stageproxy could not be built or started or
// answered with errors.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	colDirect     = "direct"
	colSquid      = "squid"
	colStageproxy = "stageproxy"
)

var columns = []string{colDirect, colSquid, colStageproxy}

var allPhases = []string{"4k", "1m", "16m", "miss", "slow", "ws", "https4k", "https1m", "leaf"}

type config struct {
	conns       int
	warm, dur   time.Duration
	only        map[string]bool
	targets     map[string]bool
	bigTrials   int
	missN       int
	slowClients int
	wsObjects   int
	wsCheck     int
	rounds      int
	keep        bool
	spBin       string
	maxRun      time.Duration
}

// cleanups run at exit, last registered first, also on SIGINT/SIGTERM.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

func atExit(f func()) {
	cleanupMu.Lock()
	cleanups = append(cleanups, f)
	cleanupMu.Unlock()
}

func runCleanups() {
	cleanupMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func main() {
	if os.Getenv(originChildEnv) == "1" {
		runOriginChild()
		return
	}
	code := run()
	runCleanups()
	os.Exit(code)
}

func parseFlags() config {
	var cfg config
	quick := flag.Bool("quick", false, "short run: 0.3s warm-up, 1.5s per load phase, fewer trials")
	only := flag.String("only", strings.Join(allPhases, ","), "phases to run: "+strings.Join(allPhases, ","))
	targets := flag.String("targets", strings.Join(columns, ","), "columns to measure: direct,squid,stageproxy")
	flag.IntVar(&cfg.conns, "conns", 64, "connections for the hit-rate phases")
	flag.DurationVar(&cfg.warm, "warmup", time.Second, "load warm-up before measuring")
	flag.DurationVar(&cfg.dur, "duration", 5*time.Second, "measured load duration per column (split over -rounds)")
	flag.IntVar(&cfg.rounds, "rounds", 3, "the columns take turns this many times in the load phases, each round with its own warm-up")
	// Single 16 MiB first bytes spread from 0.3 to over 2 ms on this
	// 2-core machine: a median of 15 put one binary anywhere from 1.1 to
	// 1.7 ms from run to run; of 60, its spread is about halved, for
	// about 3 s more.
	flag.IntVar(&cfg.bigTrials, "big-trials", 60, "16 MiB miss trials per column (median reported)")
	flag.IntVar(&cfg.missN, "miss-requests", 200, "sequential 4 KiB misses per column (median reported)")
	flag.IntVar(&cfg.slowClients, "slow-clients", 50, "concurrent clients on one slow object")
	flag.IntVar(&cfg.wsObjects, "ws-objects", 400, "distinct 1 MiB objects in the working-set phase")
	flag.IntVar(&cfg.wsCheck, "ws-check", 100, "newest objects checked for hits after the working set")
	flag.BoolVar(&cfg.keep, "keep", false, "keep temporary directories (logs, configs)")
	flag.StringVar(&cfg.spBin, "stageproxy", "", "use this stageproxy binary instead of building ./cmd/stageproxy")
	flag.DurationVar(&cfg.maxRun, "max-run", 8*time.Minute, "abort the whole run after this long")
	flag.Parse()
	if *quick {
		cfg.warm, cfg.dur = 300*time.Millisecond, 1500*time.Millisecond
		cfg.bigTrials, cfg.missN = 3, 50
	}
	cfg.only = map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allPhases, p) {
			fmt.Fprintf(os.Stderr, "bench: unknown phase %q (have %s)\n", p, strings.Join(allPhases, ","))
			os.Exit(2)
		}
		cfg.only[p] = true
	}
	cfg.targets = map[string]bool{colDirect: true}
	for _, t := range strings.Split(*targets, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(columns, t) {
			fmt.Fprintf(os.Stderr, "bench: unknown target %q\n", t)
			os.Exit(2)
		}
		cfg.targets[t] = true
	}
	cfg.conns = max(cfg.conns, 1)
	cfg.rounds = max(cfg.rounds, 1)
	cfg.bigTrials = max(cfg.bigTrials, 1)
	cfg.missN = max(cfg.missN, 1)
	cfg.slowClients = max(cfg.slowClients, 1)
	cfg.wsObjects = max(cfg.wsObjects, 1)
	cfg.wsCheck = min(max(cfg.wsCheck, 1), cfg.wsObjects)
	return cfg
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
}

func run() int {
	cfg := parseFlags()
	started := time.Now()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("%v: stopping", s)
		runCleanups()
		os.Exit(130)
	}()
	time.AfterFunc(cfg.maxRun, func() {
		logf("run exceeded -max-run %v: aborting", cfg.maxRun)
		runCleanups()
		os.Exit(1)
	})

	tmp, err := os.MkdirTemp("", "stageproxy-bench-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	atExit(func() {
		if cfg.keep {
			logf("kept %s", tmp)
			return
		}
		_ = os.RemoveAll(tmp)
	})

	b := &bench{cfg: cfg, nonce: strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36),
		byName: map[string]*target{}, status: map[string]string{}, hitRows: map[string]*row{}}

	origin, err := startOrigin(tmp)
	if err != nil {
		logf("origin: %v", err)
		return 1
	}
	atExit(origin.stop)
	b.origin = origin
	logf("origin on %s (pid %d)", origin.addr, origin.pid())
	b.add(&target{name: colDirect, addr: origin.addr, origin: origin.addr, pid: -1})

	gobin := goBinary()
	b.goVersion = runtime.Version()
	if out, err := exec.Command(gobin, "version").Output(); err == nil {
		b.goVersion = strings.TrimSpace(string(out))
	}

	// Squid.
	if cfg.targets[colSquid] {
		if bin, err := ensureSquid(); err != nil {
			b.status[colSquid] = "unavailable (" + err.Error() + ")"
		} else {
			b.squidVersion = squidVersion(bin)
			sq, addr, dir, err := startSquid(bin)
			if dir != "" {
				atExit(func() {
					if cfg.keep {
						logf("kept %s", dir)
						return
					}
					_ = os.RemoveAll(dir)
				})
			}
			if err != nil {
				b.status[colSquid] = "unavailable (" + err.Error() + ")"
			} else {
				atExit(func() { sq.stop(5 * time.Second) })
				b.squid = sq
				logf("squid on %s (pid %d)", addr, sq.pid())
				b.add(&target{name: colSquid, addr: addr, proxy: true, origin: origin.addr, pid: sq.pid()})
			}
		}
		if s := b.status[colSquid]; s != "" {
			fmt.Printf("squid: %s\n", s)
		}
	} else {
		b.status[colSquid] = "not requested"
	}

	// stageproxy.
	spFailed := false
	if cfg.targets[colStageproxy] {
		bin := cfg.spBin
		if bin == "" {
			root, err := moduleRoot(gobin)
			if err == nil {
				logf("building ./cmd/stageproxy")
				bin, err = buildStageproxy(gobin, root, tmp)
				if err == nil {
					b.commit = gitDescribe(root)
				}
			}
			if err != nil {
				b.status[colStageproxy] = "build failed"
				b.note("stageproxy: %s", firstLines(err.Error(), 6))
				spFailed = true
			}
		}
		if !spFailed {
			// Interception for the HTTPS rows: a CA from the binary's own
			// `ca init`, and the origin's CA to verify its TLS listener.
			var mitmArgs []string
			if wantHTTPS(cfg) && origin.tlsAddr != "" {
				dir := filepath.Join(tmp, "mitm-ca")
				if err := caInit(bin, tmp, dir); err != nil {
					b.tlsStatus = err.Error()
				} else {
					mitmArgs = []string{"--mitm-ca", dir, "--mitm-hosts", mitmHosts, "--upstream-ca", origin.caFile}
					b.mitmCA = dir
				}
			}
			sp, addr, err := startStageproxy(bin, tmp, mitmArgs...)
			if err != nil && len(mitmArgs) > 0 {
				// Keep the plain-HTTP rows: start it again without interception.
				b.tlsStatus = "stageproxy did not start with " + strings.Join(mitmArgs, " ") + ": " + firstLines(err.Error(), 4)
				b.mitmCA = ""
				logf("%s; starting it without interception", b.tlsStatus)
				sp, addr, err = startStageproxy(bin, tmp)
			}
			if err != nil {
				b.status[colStageproxy] = "did not start"
				b.note("stageproxy: %s", firstLines(err.Error(), 6))
				spFailed = true
			} else {
				atExit(func() { sp.stop(5 * time.Second) })
				b.sp = sp
				logf("stageproxy on %s (pid %d)", addr, sp.pid())
				b.add(&target{name: colStageproxy, addr: addr, proxy: true, origin: origin.addr, pid: sp.pid()})
			}
		}
	} else {
		b.status[colStageproxy] = "not requested"
	}

	b.sanity()
	if wantHTTPS(cfg) {
		b.setupTLS()
	}

	if cfg.only["4k"] {
		b.phaseHits("4k", size4k, 100)
	}
	if cfg.only["1m"] {
		b.phaseHits("1m", size1m, 16)
	}
	if cfg.only["miss"] {
		b.checkAlive("before the miss phase")
		b.phaseMissLatency()
	}
	if cfg.only["slow"] {
		b.checkAlive("before the slow phase")
		b.phaseSlow()
	}
	if cfg.only["16m"] {
		b.checkAlive("before the 16m phase")
		b.phaseBig()
	}
	if cfg.only["ws"] {
		b.checkAlive("before the ws phase")
		b.phaseWorkingSet()
	}
	// The HTTPS phases come last so that their TLS connections do not
	// change the peak-RSS rows of the working-set phase.
	if cfg.only["https4k"] {
		b.checkAlive("before the https4k phase")
		b.phaseHTTPSHits("4k", size4k, 100)
	}
	if cfg.only["https1m"] {
		b.checkAlive("before the https1m phase")
		b.phaseHTTPSHits("1m", size1m, 16)
	}
	if cfg.only["leaf"] {
		b.checkAlive("before the leaf phase")
		b.phaseLeaf()
	}

	b.checkAlive("at the end of the run")
	b.report(os.Stdout, time.Since(started))

	if spFailed {
		return 1
	}
	if t := b.byName[colStageproxy]; t != nil && t.errs.Load() > 0 {
		logf("stageproxy answered %d errors; first: %s", t.errs.Load(), t.firstErr)
		if b.sp != nil {
			logf("stageproxy log tail:\n%s", b.sp.tail(10))
		}
		return 1
	}
	if t := b.tlsProxy; t != nil && t.errs.Load() > 0 {
		logf("stageproxy answered %d errors through interception; first: %s", t.errs.Load(), t.firstErr)
		if b.sp != nil {
			logf("stageproxy log tail:\n%s", b.sp.tail(10))
		}
		return 1
	}
	if b.status[colStageproxy] != "" && cfg.targets[colStageproxy] {
		return 1
	}
	return 0
}

// wantHTTPS reports whether any HTTPS phase runs.
func wantHTTPS(cfg config) bool {
	return cfg.only["https4k"] || cfg.only["https1m"] || cfg.only["leaf"]
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, " / ")
}

// gitDescribe names the last commit outside bench/ and says whether the
// tree (outside bench/) has uncommitted changes.
func gitDescribe(root string) string {
	cmd := exec.Command("git", "log", "-1", "--format=%h %s", "--", ".", ":(exclude)bench")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(out))
	if len(s) > 72 {
		s = s[:72] + "…"
	}
	st := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench")
	st.Dir = root
	if out, err := st.Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		s += " (+ uncommitted changes)"
	}
	return s
}
