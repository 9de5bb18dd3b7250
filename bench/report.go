package main

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cell is one measured value.
type cell struct {
	v    float64
	ok   bool   // a good measurement
	err  bool   // measured, but the column answered errors
	note string // why there is no value
}

func val(v float64) cell      { return cell{v: v, ok: true} }
func errCell(v float64) cell  { return cell{v: v, err: true} }
func naCell(note string) cell { return cell{note: note} }

type rowKind int

const (
	rowHits4k rowKind = iota
	rowHits1m
	rowBigTTFB
	rowBigTotal
	rowMissAbs
	rowMissAdded
	rowSlow
	rowRSSBefore
	rowRSS
	rowSurvive
	rowHTTPS4k
	rowHTTPS4kVsPlain
	rowHTTPS1m
	rowHTTPS1mVsPlain
	rowLeafNew
	rowLeafRepeat
	rowLeafRatio
)

// row is one line of the table.
type row struct {
	name   string
	prec   int    // decimals
	suffix string // after each value ("x" for ratio rows)
	higher bool   // higher is better
	ratios bool   // print stageproxy/direct and stageproxy/squid
	// vsSquid: stageproxy must be at least as good as Squid.
	vsSquid bool
	target  string
	// meets reports whether stageproxy's value meets the target; nil when
	// the row has no target of its own.
	meets func(sp, direct cell) bool
	cells map[string]cell
	extra map[string]string // per-column remarks for the notes
	warn  map[string]string // per-column warnings (e.g. warm-up not hits)
}

func (b *bench) newRow(k rowKind) *row {
	c := b.cfg
	r := &row{cells: map[string]cell{}, extra: map[string]string{}, warn: map[string]string{}}
	switch k {
	case rowHits4k:
		r.name = fmt.Sprintf("4 KiB hits, req/s (%d conns)", c.conns)
		r.higher, r.ratios, r.vsSquid = true, true, true
		r.target = "≥0.9x direct"
		r.meets = func(sp, d cell) bool { return d.ok && sp.v >= 0.9*d.v }
	case rowHits1m:
		r.name = fmt.Sprintf("1 MiB hits, MiB/s (%d conns)", c.conns)
		r.higher, r.ratios, r.vsSquid = true, true, true
		r.target = "≥0.8x direct"
		r.meets = func(sp, d cell) bool { return d.ok && sp.v >= 0.8*d.v }
	case rowBigTTFB:
		r.name = fmt.Sprintf("16 MiB miss, time to first byte, ms (median of %d)", c.bigTrials)
		r.prec, r.ratios, r.vsSquid = 2, true, true
	case rowBigTotal:
		r.name = fmt.Sprintf("16 MiB miss, total time, ms (median of %d)", c.bigTrials)
		r.prec, r.ratios, r.vsSquid = 1, true, true
	case rowMissAbs:
		r.name = fmt.Sprintf("4 KiB miss latency, ms (median of %d)", c.missN)
		r.prec, r.ratios = 3, true
	case rowMissAdded:
		r.name = "added latency of a 4 KiB miss (proxy − direct), ms"
		r.prec, r.vsSquid = 3, true
		r.target = "< 0.2 ms"
		r.meets = func(sp, _ cell) bool { return sp.v < 0.2 }
	case rowSlow:
		r.name = fmt.Sprintf("origin fetches, %d clients on one 500 ms object", c.slowClients)
		r.vsSquid = true
		r.target = "1"
		r.meets = func(sp, _ cell) bool { return sp.v == 1 }
	case rowRSSBefore:
		r.name = "peak RSS before the working set, MiB"
	case rowRSS:
		r.name = fmt.Sprintf("peak RSS after %d MiB working set, MiB", c.wsObjects)
		r.vsSquid = true
		r.target = "< 140 MiB"
		r.meets = func(sp, _ cell) bool { return sp.v < 140 }
	case rowSurvive:
		r.name = fmt.Sprintf("newest %d of %d still hits", c.wsCheck, c.wsObjects)
		r.higher, r.vsSquid = true, true
		need := (88*c.wsCheck + 99) / 100
		r.target = "≥ " + strconv.Itoa(need)
		r.meets = func(sp, _ cell) bool { return sp.v >= float64(need) }
	case rowHTTPS4k:
		r.name = fmt.Sprintf("4 KiB HTTPS hits via interception, req/s (%d conns)", c.conns)
		r.higher, r.ratios = true, true
	case rowHTTPS1m:
		r.name = fmt.Sprintf("1 MiB HTTPS hits via interception, MiB/s (%d conns)", c.conns)
		r.higher, r.ratios = true, true
	case rowHTTPS4kVsPlain:
		r.name = "  4 KiB HTTPS hits ÷ the same column's plain-HTTP 4 KiB hits"
		r.prec, r.suffix, r.higher = 2, "x", true
	case rowHTTPS1mVsPlain:
		r.name = "  1 MiB HTTPS hits ÷ the same column's plain-HTTP 1 MiB hits"
		r.prec, r.suffix, r.higher = 2, "x", true
	case rowLeafNew:
		r.name = fmt.Sprintf("CONNECT + TLS handshake, new host (leaf signed), ms (median of %d)", leafTrials)
		r.prec = 3
	case rowLeafRepeat:
		r.name = fmt.Sprintf("CONNECT + TLS handshake, repeat host (leaf cached), ms (median of %d)", leafTrials)
		r.prec = 3
	case rowLeafRatio:
		r.name = "  new host ÷ repeat host"
		r.prec, r.suffix = 2, "x"
	}
	b.rows = append(b.rows, r)
	return r
}

func (b *bench) fmtCell(r *row, col string) string {
	c, ok := r.cells[col]
	if !ok {
		if s := b.status[col]; s != "" {
			word, _, _ := strings.Cut(s, " (")
			word, _, _ = strings.Cut(word, ":")
			return word
		}
		return "—"
	}
	var s string
	switch {
	case c.ok:
		s = strconv.FormatFloat(c.v, 'f', r.prec, 64) + r.suffix
	case c.err:
		s = "ERR"
	default:
		s = c.note
	}
	if w := r.warn[col]; w != "" {
		s += " ⚠"
	}
	return s
}

func ratio(a, b cell) string {
	if !a.ok || !b.ok || b.v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2fx", a.v/b.v)
}

// verdict is the result column: "ok" or "below target" markers.
func (r *row) verdict() string {
	if r.meets == nil && !r.vsSquid {
		return ""
	}
	sp, ok := r.cells[colStageproxy]
	if !ok || !sp.ok {
		return "no result"
	}
	var misses []string
	if r.meets != nil && !r.meets(sp, r.cells[colDirect]) {
		misses = append(misses, "target "+r.target)
	}
	if sq, ok := r.cells[colSquid]; r.vsSquid && ok && sq.ok {
		worse := sp.v < sq.v
		if !r.higher {
			worse = sp.v > sq.v
		}
		if worse {
			misses = append(misses, "squid")
		}
	}
	if len(misses) == 0 {
		return "ok"
	}
	return "**below target** (" + strings.Join(misses, ", ") + ")"
}

func (r *row) targetText() string {
	var parts []string
	if r.target != "" {
		parts = append(parts, r.target)
	}
	if r.vsSquid {
		if r.higher {
			parts = append(parts, "≥ squid")
		} else {
			parts = append(parts, "≤ squid")
		}
	}
	return strings.Join(parts, ", ")
}

func writeTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var sb strings.Builder
		sb.WriteString("|")
		for i, c := range cells {
			sb.WriteString(" ")
			sb.WriteString(c)
			sb.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))))
			sb.WriteString(" |")
		}
		fmt.Fprintln(w, sb.String())
	}
	line(header)
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = strings.Repeat("-", widths[i])
	}
	line(seps)
	for _, r := range rows {
		line(r)
	}
}

func (b *bench) report(w io.Writer, took time.Duration) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## stageproxy benchmark (loopback)")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- command: `make bench` (= `go run ./bench`)\n")
	fmt.Fprintf(w, "- date: %s\n", time.Now().Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "- go: %s\n", b.goVersion)
	fmt.Fprintf(w, "- nproc: %d (GOMAXPROCS %d)\n", runtime.NumCPU(), runtime.GOMAXPROCS(0))
	if b.commit != "" {
		fmt.Fprintf(w, "- stageproxy: %s\n", b.commit)
	}
	if b.squidVersion != "" {
		fmt.Fprintf(w, "- squid: %s (memory only, cache_mem 100 MB, collapsed_forwarding on)\n", b.squidVersion)
	}
	fmt.Fprintf(w, "- load: %d keep-alive connections, %v warm-up + %v measured per column; run took %v\n",
		b.cfg.conns, b.cfg.warm, b.cfg.dur, took.Round(time.Second))
	for _, col := range columns {
		if s := b.status[col]; s != "" && s != "not requested" {
			fmt.Fprintf(w, "- %s: %s\n", col, s)
		}
	}
	fmt.Fprintln(w)

	header := []string{"metric", colDirect, colSquid, colStageproxy, "stageproxy/direct", "stageproxy/squid", "target", "result"}
	var rows [][]string
	for _, r := range b.rows {
		rd, rs := "—", "—"
		if r.ratios {
			rd = ratio(r.cells[colStageproxy], r.cells[colDirect])
			rs = ratio(r.cells[colStageproxy], r.cells[colSquid])
		}
		rows = append(rows, []string{r.name, b.fmtCell(r, colDirect), b.fmtCell(r, colSquid), b.fmtCell(r, colStageproxy),
			rd, rs, r.targetText(), r.verdict()})
	}
	writeTable(w, header, rows)

	var notes []string
	for _, r := range b.rows {
		for _, col := range columns {
			if s := r.warn[col]; s != "" {
				notes = append(notes, fmt.Sprintf("⚠ %s, %s: warm-up second fetches %s", col, r.name, s))
			}
			if s := r.extra[col]; s != "" {
				notes = append(notes, fmt.Sprintf("%s, %s: %s", col, r.name, s))
			}
		}
	}
	notes = append(notes, b.notes...)
	for _, col := range columns {
		if t := b.byName[col]; t != nil && t.errs.Load() > 0 {
			notes = append(notes, fmt.Sprintf("%s answered %d errors; first: %s", col, t.errs.Load(), t.firstErr))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Notes:")
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}

	if len(b.cpu) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "CPU during the measured window (cores; the load generator is `bench`):")
		fmt.Fprintln(w)
		var crows [][]string
		for _, c := range b.cpu {
			f := func(i int) string {
				if i >= len(c.cores) || (i == 2 && c.target == colDirect) {
					return "—"
				}
				return fmt.Sprintf("%.2f", c.cores[i])
			}
			other := "—"
			if len(c.cores) == 4 {
				other = fmt.Sprintf("%.2f", max(0, c.cores[3]-c.cores[0]-c.cores[1]-c.cores[2]))
			}
			crows = append(crows, []string{c.phase, c.target, c.rate, f(0), f(1), f(2), other})
		}
		writeTable(w, []string{"phase", "column", "rate", "bench", "origin", "proxy", "rest of machine"}, crows)
		fmt.Fprintf(w, "\n(%d CPUs; \"rest of machine\" is busy time of other processes and of interrupts not charged to these three; a high value means other load made the numbers noisy.)\n", runtime.NumCPU())
	}
}
