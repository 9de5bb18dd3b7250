package main

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// bench holds the run's state: the columns still measurable, the rows
// gathered so far and notes for the report.
type bench struct {
	cfg     config
	nonce   string // makes this run's URLs unique
	origin  *originProc
	targets []*target
	byName  map[string]*target
	// status says why a column has no numbers ("unavailable (...)").
	status    map[string]string
	squid, sp *child
	rows      []*row
	// hitRows holds the plain-HTTP hit rows by kind ("4k", "1m"), for
	// the HTTPS rows' ratios.
	hitRows map[string]*row
	// tlsDirect and tlsProxy are the HTTPS columns: the origin's TLS
	// listener and stageproxy intercepting CONNECTs (nil when not set up;
	// tlsStatus says why).
	tlsDirect, tlsProxy *target
	tlsStatus           string
	mitmCA              string // directory holding the interception ca.crt
	tlsNoted            bool   // the HTTPS rows' notes are written
	tlsBroken           bool   // tlsProxy failed its sanity check
	notes               []string
	cpu                 []cpuRow

	goVersion, squidVersion, commit string
}

type cpuRow struct {
	phase, target, rate string
	cores               cpuUsage // bench, origin, proxy
}

func (b *bench) add(t *target) {
	b.targets = append(b.targets, t)
	b.byName[t.name] = t
}

func (b *bench) drop(name, why string) {
	b.status[name] = why
	b.targets = slices.DeleteFunc(b.targets, func(t *target) bool { return t.name == name })
	// byName keeps it, so that its errors still decide the exit status.
}

func (b *bench) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	b.notes = append(b.notes, s)
	logf("%s", s)
}

func (b *bench) pids(t *target) []int {
	return []int{0, b.origin.pid(), t.pid}
}

// checkAlive drops stageproxy from the remaining phases when its process
// has exited, with the first panic or fatal line of its log as the reason.
func (b *bench) checkAlive(phase string) {
	if b.sp == nil || !b.sp.exited() || b.byName[colStageproxy] == nil {
		return
	}
	if !slices.Contains(b.targets, b.byName[colStageproxy]) {
		return
	}
	why := crashLine(b.sp.log)
	b.byName[colStageproxy].noteErr("process exited (noticed %s): %s", phase, why)
	b.drop(colStageproxy, "crashed ("+why+")")
	b.note("stageproxy process exited (noticed %s): %s; log: %s (kept with -keep)", phase, why, b.sp.log)
}

// sanity fetches one object through every column and drops the columns that
// cannot serve it, so that a broken proxy costs no load-phase time.
func (b *bench) sanity() {
	for _, t := range slices.Clone(b.targets) {
		var r response
		path := "/obj/4k/sanity-" + b.nonce
		_, _, err := fetch(t, t.request("GET", path, ""), &r, 10*time.Second)
		msg := ""
		switch {
		case err != nil:
			msg = err.Error()
		case r.status != 200 || r.bodyLen != size4k:
			msg = fmt.Sprintf("GET %s: status %d, %d body bytes", path, r.status, r.bodyLen)
		}
		if msg == "" {
			continue
		}
		switch t.name {
		case colStageproxy:
			t.noteErr("sanity check: %s", msg)
			b.drop(t.name, "broken: "+msg)
			logf("stageproxy fails the sanity check: %s", msg)
			if b.sp != nil {
				logf("stageproxy log tail:\n%s", b.sp.tail(10))
			}
		case colSquid:
			b.drop(t.name, "unavailable ("+msg+")")
			fmt.Printf("squid: unavailable (%s)\n", msg)
		default:
			b.note("direct origin fails the sanity check: %s", msg)
		}
	}
}

// warmVerify fetches each path twice through t on one connection and
// returns how many second fetches were checked and how many of those were
// not hits.
func (b *bench) warmVerify(t *target, paths []string, size int64) (checked, nonHits int) {
	c, err := t.dial(time.Now().Add(2 * time.Minute))
	if err != nil {
		t.noteErr("warm-up: %v", err)
		return 0, 0
	}
	defer func() { c.Close() }()
	r := response{wantHeaders: true}
	for _, p := range paths {
		req := t.request("GET", p, "")
		for i := range 2 {
			if _, _, err := c.do(req, &r, false); err != nil {
				t.noteErr("warm-up GET %s: %v", p, err)
				c.Close()
				if c, err = t.dial(time.Now().Add(2 * time.Minute)); err != nil {
					return checked, nonHits
				}
				continue
			}
			if r.status != 200 || r.bodyLen != size {
				t.noteErr("warm-up GET %s: status %d, %d body bytes", p, r.status, r.bodyLen)
			}
			if i == 1 && t.proxy {
				checked++
				if !t.isHit(&r) {
					nonHits++
				}
			}
			if r.close {
				c.Close()
				if c, err = t.dial(time.Now().Add(2 * time.Minute)); err != nil {
					return checked, nonHits
				}
			}
		}
	}
	return checked, nonHits
}

// phaseHits: warm the caches with nobj objects of one size, then load every
// column with cfg.conns keep-alive connections.
func (b *bench) phaseHits(kind string, size int64, nobj int) {
	paths := make([]string, nobj)
	for i := range paths {
		paths[i] = "/obj/" + kind + "/" + strconv.Itoa(i)
	}
	var rw *row
	if kind == "4k" {
		rw = b.newRow(rowHits4k)
	} else {
		rw = b.newRow(rowHits1m)
	}
	b.hitRows[kind] = rw
	b.checkAlive("before the warm-up of " + kind + " objects")
	for _, t := range b.targets {
		if t.proxy {
			checked, n := b.warmVerify(t, paths, size)
			switch {
			case checked < nobj:
				b.note("WARNING %s: only %d of %d objects /obj/%s/N could be fetched twice", t.name, checked, nobj, kind)
				rw.warn[t.name] = fmt.Sprintf("%d/%d unverified", nobj-checked, nobj)
			case n > 0:
				b.note("WARNING %s: %d of %d second fetches of /obj/%s/N were not hits (%s)",
					t.name, n, nobj, kind, hitHeaderName(t))
				rw.warn[t.name] = fmt.Sprintf("%d/%d not hits", n, nobj)
			}
		}
	}
	b.checkAlive("after the warm-up of " + kind + " objects")
	results := b.loadRounds(kind+" hits", b.targets, paths, size)
	for _, t := range b.targets {
		res := results[t.name]
		v, rate := hitRate(kind, res)
		b.cpu = append(b.cpu, cpuRow{phase: kind + " hits", target: t.name, rate: rate, cores: res.cpu})
		if res.errs+res.bad > 0 {
			t.noteErr("%s hits: %s", kind, res.firstErr)
			b.note("%s: %s hits: %d transport errors, %d bad responses (first: %s)", t.name, kind, res.errs, res.bad, res.firstErr)
			rw.cells[t.name] = errCell(v)
			continue
		}
		rw.cells[t.name] = val(v)
	}
}

// loadRounds runs the hit load on paths against each of ts: the columns take
// turns, cfg.rounds times, so that a change in the machine's background load
// does not favour one of them. A column that failed sits out the rest.
func (b *bench) loadRounds(phase string, ts []*target, paths []string, size int64) map[string]*loadResult {
	results := map[string]*loadResult{}
	reqs := map[string][][]byte{}
	for _, t := range ts {
		for _, p := range paths {
			reqs[t.name] = append(reqs[t.name], t.request("GET", p, ""))
		}
	}
	slice := b.cfg.dur / time.Duration(b.cfg.rounds)
	for round := range b.cfg.rounds {
		for _, t := range ts {
			if results[t.name] != nil && results[t.name].errs+results[t.name].bad > 0 {
				continue
			}
			logf("%s via %s: %d conns, %v + %v (round %d/%d)", phase, t.name, b.cfg.conns, b.cfg.warm, slice, round+1, b.cfg.rounds)
			res := runLoad(t, reqs[t.name], size, b.cfg.conns, b.cfg.warm, slice, b.pids(t))
			if acc := results[t.name]; acc != nil {
				acc.merge(res)
			} else {
				results[t.name] = &res
			}
		}
	}
	return results
}

func hitHeaderName(t *target) string {
	if t.name == colSquid {
		return "X-Cache: HIT"
	}
	return "Cache-Status: stageproxy; hit"
}

// hitRate is a hit phase's figure: requests/s for 4 KiB objects, MiB/s for
// larger ones, and its text for the CPU table.
func hitRate(kind string, res *loadResult) (float64, string) {
	if kind == "4k" {
		v := res.reqPerSec()
		return v, fmt.Sprintf("%.0f req/s", v)
	}
	v := res.mibPerSec()
	return v, fmt.Sprintf("%.0f MiB/s", v)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rotated is targets in the order trial i runs them: each trial starts one
// column further on, so that no column always runs right after the same
// other one. In a fixed order (direct, squid, stageproxy) stageproxy's 16 MiB
// misses always came just after Squid's, and took their first byte about
// 10% later than in the reverse order (medians of 40, four runs each).
func rotated(targets []*target, i int) []*target {
	if len(targets) == 0 {
		return nil
	}
	k := i % len(targets)
	return append(slices.Clone(targets[k:]), targets[:k]...)
}

// phaseMissLatency: cfg.missN sequential unique-URL 4 KiB misses per column,
// interleaved across columns (rotated), each column on its own keep-alive
// connection.
func (b *bench) phaseMissLatency() {
	abs, added := b.newRow(rowMissAbs), b.newRow(rowMissAdded)
	deadline := time.Now().Add(2 * time.Minute)
	conns := map[string]*conn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	lat := map[string][]float64{}
	failed := map[string]bool{}
	get := func(t *target, path string) (time.Duration, bool) {
		c := conns[t.name]
		if c == nil {
			var err error
			if c, err = dial(t.addr, deadline); err != nil {
				t.noteErr("miss latency: %v", err)
				return 0, false
			}
			conns[t.name] = c
		}
		var r response
		_, d, err := c.do(t.request("GET", path, ""), &r, false)
		if err == nil && (r.status != 200 || r.bodyLen != size4k) {
			err = fmt.Errorf("GET %s: status %d, %d body bytes", path, r.status, r.bodyLen)
		}
		if err != nil || r.close {
			c.Close()
			delete(conns, t.name)
		}
		if err != nil {
			t.noteErr("miss latency: %v", err)
			return 0, false
		}
		return d, true
	}
	logf("4 KiB miss latency: %d sequential misses per column", b.cfg.missN)
	for i := range 5 { // warm the connections, upstream ones included
		for _, t := range b.targets {
			get(t, fmt.Sprintf("/miss/warm-%s-%s-%d", t.name, b.nonce, i))
		}
	}
	for i := range b.cfg.missN {
		for _, t := range rotated(b.targets, i) {
			if failed[t.name] {
				continue
			}
			d, ok := get(t, fmt.Sprintf("/miss/%s-%s-%d", t.name, b.nonce, i))
			if !ok {
				failed[t.name] = true
				continue
			}
			lat[t.name] = append(lat[t.name], ms(d))
		}
	}
	direct := median(lat[colDirect])
	for _, t := range b.targets {
		m := median(lat[t.name])
		if failed[t.name] {
			abs.cells[t.name] = errCell(m)
			added.cells[t.name] = errCell(m - direct)
			continue
		}
		abs.cells[t.name] = val(m)
		added.cells[t.name] = val(m - direct)
	}
}

// phaseSlow: cfg.slowClients clients ask at once for one object the origin
// takes 500 ms to produce; the origin counts how often it was asked.
func (b *bench) phaseSlow() {
	rw := b.newRow(rowSlow)
	for _, t := range b.targets {
		path := fmt.Sprintf("/slow/%s-%s", t.name, b.nonce)
		logf("slow object via %s: %d concurrent clients", t.name, b.cfg.slowClients)
		slowest, errs, first := burst(t, t.request("GET", path, ""), size4k, b.cfg.slowClients, 20*time.Second)
		n, err := b.origin.countPath(path)
		if err != nil {
			b.note("origin stats: %v", err)
			rw.cells[t.name] = naCell("stats failed")
			continue
		}
		if errs > 0 {
			t.noteErr("slow object: %d of %d clients failed: %s", errs, b.cfg.slowClients, first)
			b.note("%s: slow object: %d of %d clients failed (first: %s)", t.name, errs, b.cfg.slowClients, first)
			rw.cells[t.name] = errCell(float64(n))
			continue
		}
		rw.cells[t.name] = val(float64(n))
		rw.extra[t.name] = fmt.Sprintf("slowest client %.0f ms", ms(slowest))
	}
}

// phaseBig: cfg.bigTrials fetches of a unique 16 MiB URL per column, each
// on a fresh connection, interleaved across columns (rotated).
func (b *bench) phaseBig() {
	ttfbRow, totalRow := b.newRow(rowBigTTFB), b.newRow(rowBigTotal)
	ttfb, total := map[string][]float64{}, map[string][]float64{}
	failed := map[string]bool{}
	logf("16 MiB misses: %d trials per column", b.cfg.bigTrials)
	for i := range b.cfg.bigTrials {
		for _, t := range rotated(b.targets, i) {
			if failed[t.name] {
				continue
			}
			path := fmt.Sprintf("/big16m/%s-%s-%d", t.name, b.nonce, i)
			var r response
			tf, tt, err := fetch(t, t.request("GET", path, ""), &r, time.Minute)
			if err == nil && (r.status != 200 || r.bodyLen != size16m) {
				err = fmt.Errorf("GET %s: status %d, %d body bytes", path, r.status, r.bodyLen)
			}
			if err != nil {
				t.noteErr("16 MiB miss: %v", err)
				b.note("%s: 16 MiB miss: %v", t.name, err)
				failed[t.name] = true
				continue
			}
			ttfb[t.name] = append(ttfb[t.name], ms(tf))
			total[t.name] = append(total[t.name], ms(tt))
		}
	}
	for _, t := range b.targets {
		if failed[t.name] {
			ttfbRow.cells[t.name] = errCell(median(ttfb[t.name]))
			totalRow.cells[t.name] = errCell(median(total[t.name]))
			continue
		}
		ttfbRow.cells[t.name] = val(median(ttfb[t.name]))
		totalRow.cells[t.name] = val(median(total[t.name]))
		// Single trials spread widely on a busy 2-core machine: show how.
		ttfbRow.extra[t.name] = spread(ttfb[t.name])
	}
}

// spread describes the trials behind a median: their quartiles and range.
func spread(xs []float64) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) < 4 {
		return ""
	}
	q := func(p float64) float64 { return s[int(p*float64(len(s)-1)+0.5)] }
	return fmt.Sprintf("trials: min %.2f, quartiles %.2f-%.2f, max %.2f ms", s[0], q(0.25), q(0.75), s[len(s)-1])
}

// phaseWorkingSet: cfg.wsObjects distinct 1 MiB objects fetched once each
// through each proxy, then peak RSS, then how many of the newest wsCheck are
// still hits (newest first, only-if-cached; see the package comment).
func (b *bench) phaseWorkingSet() {
	before, rss, survive := b.newRow(rowRSSBefore), b.newRow(rowRSS), b.newRow(rowSurvive)
	for _, r := range []*row{before, rss, survive} {
		r.cells[colDirect] = naCell("—")
	}
	for _, t := range b.targets {
		if !t.proxy {
			continue
		}
		if hwm, _, err := procStatus(t.pid); err == nil {
			before.cells[t.name] = val(hwm)
		}
		prefix := fmt.Sprintf("/obj/1m/ws-%s-%s-", t.name, b.nonce)
		logf("working set via %s: %d x 1 MiB", t.name, b.cfg.wsObjects)
		deadline := time.Now().Add(3 * time.Minute)
		c, err := dial(t.addr, deadline)
		if err != nil {
			t.noteErr("working set: %v", err)
			rss.cells[t.name], survive.cells[t.name] = naCell("err"), naCell("err")
			continue
		}
		ok := true
		var r response
		for n := range b.cfg.wsObjects {
			path := prefix + strconv.Itoa(n)
			_, _, err := c.do(t.request("GET", path, ""), &r, false)
			if err == nil && (r.status != 200 || r.bodyLen != size1m) {
				err = fmt.Errorf("GET %s: status %d, %d body bytes", path, r.status, r.bodyLen)
			}
			if err != nil {
				t.noteErr("working set: %v", err)
				b.note("%s: working set: %v", t.name, err)
				ok = false
				break
			}
			if r.close {
				c.Close()
				if c, err = dial(t.addr, deadline); err != nil {
					ok = false
					break
				}
			}
		}
		hwm, cur, err := procStatus(t.pid)
		if err != nil {
			rss.cells[t.name] = naCell("no /proc")
		} else if ok {
			rss.cells[t.name] = val(hwm)
			rss.extra[t.name] = fmt.Sprintf("RSS now %.0f MiB", cur)
		} else {
			rss.cells[t.name] = errCell(hwm)
		}
		if !ok {
			c.Close()
			survive.cells[t.name] = naCell("err")
			continue
		}
		originBefore, _ := b.origin.countPrefix(prefix)
		hits, refused, other := 0, 0, 0
		r = response{wantHeaders: true}
		for n := b.cfg.wsObjects - 1; n >= b.cfg.wsObjects-b.cfg.wsCheck; n-- {
			path := prefix + strconv.Itoa(n)
			_, _, err := c.do(t.request("GET", path, "Cache-Control: only-if-cached\r\n"), &r, false)
			if err != nil {
				t.noteErr("working-set check: %v", err)
				ok = false
				break
			}
			switch {
			case r.status == 200 && t.isHit(&r):
				hits++
			case r.status == 200:
				other++
			case r.status == 504:
				refused++
			default:
				t.noteErr("working-set check GET %s (only-if-cached): status %d", path, r.status)
				ok = false
			}
			if r.close {
				c.Close()
				if c, err = dial(t.addr, deadline); err != nil {
					ok = false
					break
				}
			}
		}
		c.Close()
		originAfter, _ := b.origin.countPrefix(prefix)
		if !ok {
			survive.cells[t.name] = errCell(float64(hits))
			continue
		}
		survive.cells[t.name] = val(float64(hits))
		if t.name == colSquid && hits == 0 && refused == b.cfg.wsCheck {
			b.note("squid kept none of the newest objects: once cache_mem is full, Squid 5.7 admits few newly fetched " +
				"objects to its memory cache (reproducible with curl; the only-if-cached check answered 504 " +
				"without contacting the origin, so the check did not cause this)")
		}
		survive.extra[t.name] = fmt.Sprintf("misses: %d answered 504, %d fetched; check caused %d origin fetches",
			refused, other, originAfter-originBefore)
	}
}
