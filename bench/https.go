package main

// HTTPS interception rows (issue 4): 4 KiB and 1 MiB hits inside
// intercepted CONNECT tunnels, as ratios to the same run's plain-HTTP hits,
// and what the first CONNECT to a new host (a leaf certificate signed
// during the handshake) costs against a repeat one.
//
// The origin child serves the same paths over TLS with a certificate for
// localhost and 127.0.0.1 from a CA made here (origin-ca.pem in the run's
// temporary directory). stageproxy runs with --mitm-ca DIR (made by its own
// `ca init --out DIR`), --mitm-hosts localhost,*.bench.test and
// --upstream-ca origin-ca.pem. The HTTPS "direct" column is the origin's
// TLS listener with a client that trusts origin-ca.pem; Squid has no
// ssl-bump configuration here, so its HTTPS cells say "not measured".

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

const (
	// mitmHosts is stageproxy's --mitm-hosts: the origin's name and the
	// names the leaf phase makes up (they never resolve: the leaf phase
	// stops after the handshake, before the proxy would dial).
	mitmHosts = "localhost,*.bench.test"
	// leafTrials is how many new hosts, and as many repeats of one host,
	// the leaf phase times.
	leafTrials = 50
)

// originTLSFiles are the PEM files makeOriginTLS wrote.
type originTLSFiles struct {
	caFile, certFile, keyFile string
	caPool                    *x509.CertPool
}

// makeOriginTLS makes an ECDSA P-256 CA and a server certificate it signs
// for localhost and 127.0.0.1, both valid for a day, and writes
// tmp/origin-ca.pem, tmp/origin.crt and tmp/origin.key (0600).
func makeOriginTLS(tmp string) (*originTLSFiles, error) {
	serial := func() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120)) }
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "stageproxy bench origin CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if sn, err = serial(); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f := &originTLSFiles{
		caFile:   filepath.Join(tmp, "origin-ca.pem"),
		certFile: filepath.Join(tmp, "origin.crt"),
		keyFile:  filepath.Join(tmp, "origin.key"),
		caPool:   x509.NewCertPool(),
	}
	f.caPool.AddCert(caCert)
	for _, w := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{f.caFile, "CERTIFICATE", caDER, 0o644},
		{f.certFile, "CERTIFICATE", der, 0o644},
		{f.keyFile, "PRIVATE KEY", keyDER, 0o600},
	} {
		if err := os.WriteFile(w.path, pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der}), w.mode); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// dialTLS opens a TLS client connection to addr, first asking addr for a
// CONNECT tunnel to connect when that is not empty, and returns it with its
// handshake's state. deadline bounds everything, including later use.
func dialTLS(addr, connect string, conf *tls.Config, deadline time.Time) (*conn, tls.ConnectionState, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, tls.ConnectionState{}, err
	}
	_ = raw.SetDeadline(deadline)
	if connect != "" {
		if err := sendConnect(raw, connect); err != nil {
			raw.Close()
			return nil, tls.ConnectionState{}, fmt.Errorf("CONNECT %s: %w", connect, err)
		}
	}
	tc := tls.Client(raw, conf)
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, tls.ConnectionState{}, fmt.Errorf("TLS handshake with %s: %w", conf.ServerName, err)
	}
	return &conn{c: tc, br: bufio.NewReaderSize(tc, 64<<10)}, tc.ConnectionState(), nil
}

// sendConnect asks for a tunnel to authority and reads the proxy's answer,
// which must be a 2xx with nothing after its header (the proxy waits for
// the client's TLS ClientHello).
func sendConnect(c net.Conn, authority string) error {
	req := "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\nUser-Agent: stageproxy-bench/1\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, 4096)
	status, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("reading the status line: %w", err)
	}
	status = bytes.TrimRight(status, "\r\n")
	if len(status) < 12 || !bytes.HasPrefix(status, []byte("HTTP/1.")) || status[9] != '2' {
		return fmt.Errorf("proxy answered %.80q", status)
	}
	for i := 0; ; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading the response header: %w", err)
		}
		if len(line) <= 2 && (line[0] == '\r' || line[0] == '\n') {
			break
		}
		if i >= 100 {
			return errors.New("more than 100 header lines in the CONNECT response")
		}
	}
	if n := br.Buffered(); n > 0 {
		return fmt.Errorf("proxy sent %d bytes after its %q", n, status)
	}
	return nil
}

// setupTLS makes the HTTPS columns: the origin's TLS listener, and
// stageproxy intercepting CONNECTs to it when it runs with --mitm-ca; each
// must serve one 4 KiB object over HTTPS or it is left out, with the reason
// in tlsStatus.
func (b *bench) setupTLS() {
	if b.origin.tlsAddr == "" {
		b.tlsStatus = fmt.Sprintf("the origin has no TLS listener (%v)", b.origin.tlsErr)
		return
	}
	_, port, _ := net.SplitHostPort(b.origin.tlsAddr)
	host := net.JoinHostPort("localhost", port)
	b.tlsDirect = &target{name: colDirect, addr: b.origin.tlsAddr, origin: host, pid: -1,
		tlsConf: &tls.Config{RootCAs: b.origin.caPool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	sp := b.byName[colStageproxy]
	switch {
	case sp == nil || !slices.Contains(b.targets, sp):
		// stageproxy not requested or broken: its column says so already.
	case b.mitmCA == "":
		if b.tlsStatus == "" {
			b.tlsStatus = "stageproxy runs without --mitm-ca"
		}
	default:
		pemCA, err := os.ReadFile(filepath.Join(b.mitmCA, "ca.crt"))
		pool := x509.NewCertPool()
		if err == nil && !pool.AppendCertsFromPEM(pemCA) {
			err = errors.New("no PEM certificate in it")
		}
		if err != nil {
			b.tlsStatus = fmt.Sprintf("interception CA %s/ca.crt: %v", b.mitmCA, err)
			break
		}
		b.tlsProxy = &target{name: colStageproxy, addr: sp.addr, proxy: true, origin: host, pid: sp.pid, connect: host,
			tlsConf: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	}
	for _, t := range []*target{b.tlsDirect, b.tlsProxy} {
		if t == nil {
			continue
		}
		path := "/obj/4k/tls-sanity-" + b.nonce
		c, err := t.dial(time.Now().Add(10 * time.Second))
		var r response
		if err == nil {
			_, _, err = c.do(t.request("GET", path, ""), &r, false)
			c.Close()
		}
		if err == nil && (r.status != 200 || r.bodyLen != size4k) {
			err = fmt.Errorf("GET https://%s%s: status %d, %d body bytes", host, path, r.status, r.bodyLen)
		}
		if err == nil {
			continue
		}
		if t == b.tlsDirect {
			b.note("the origin's TLS listener fails the sanity check: %v", err)
			b.tlsDirect = nil
			continue
		}
		t.noteErr("HTTPS sanity check: %v", err)
		b.tlsStatus = "broken: " + err.Error()
		b.note("stageproxy fails the HTTPS sanity check through interception: %v", err)
		if b.sp != nil {
			logf("stageproxy log tail:\n%s", b.sp.tail(10))
		}
		b.tlsBroken = true // tlsProxy stays, so that its error decides the exit status
	}
}

// tlsTargets returns the HTTPS columns still measurable.
func (b *bench) tlsTargets() []*target {
	var ts []*target
	if b.tlsDirect != nil {
		ts = append(ts, b.tlsDirect)
	}
	if b.tlsProxy != nil && !b.tlsBroken && slices.Contains(b.targets, b.byName[colStageproxy]) {
		ts = append(ts, b.tlsProxy)
	}
	return ts
}

// tlsCells fills the cells of HTTPS rows that have no measurement: Squid's
// (not measured) and, when interception is not set up, stageproxy's.
func (b *bench) tlsCells(rows ...*row) {
	for _, r := range rows {
		if _, ok := r.cells[colSquid]; !ok && b.status[colSquid] == "" {
			r.cells[colSquid] = naCell("not measured")
		}
		if _, ok := r.cells[colStageproxy]; !ok && b.status[colStageproxy] == "" && b.tlsStatus != "" {
			r.cells[colStageproxy] = naCell("unavailable")
		}
	}
	if !b.tlsNoted {
		b.tlsNoted = true
		if b.cfg.targets[colSquid] {
			b.note("squid: HTTPS rows not measured: the generated squid.conf has no ssl-bump configuration " +
				"(interception in Squid needs ssl_bump rules, a signing CA and an OpenSSL build), so Squid would only tunnel")
		}
		if b.tlsStatus != "" && b.status[colStageproxy] == "" {
			b.note("stageproxy: HTTPS rows unavailable: %s", b.tlsStatus)
		}
	}
}

// phaseHTTPSHits is phaseHits for HTTPS: warm nobj objects through each
// HTTPS column (checking that the second fetch through stageproxy is a
// hit), load them with cfg.conns tunnelled keep-alive connections, and
// divide by the same column's plain-HTTP hits when that row was measured.
func (b *bench) phaseHTTPSHits(kind string, size int64, nobj int) {
	var rw, vs *row
	if kind == "4k" {
		rw, vs = b.newRow(rowHTTPS4k), b.newRow(rowHTTPS4kVsPlain)
	} else {
		rw, vs = b.newRow(rowHTTPS1m), b.newRow(rowHTTPS1mVsPlain)
	}
	defer b.tlsCells(rw, vs)
	vs.cells[colSquid] = naCell("—")
	ts := b.tlsTargets()
	paths := make([]string, nobj)
	for i := range paths {
		paths[i] = "/obj/" + kind + "/" + strconv.Itoa(i)
	}
	for _, t := range ts {
		checked, n := b.warmVerify(t, paths, size)
		if !t.proxy {
			continue
		}
		switch {
		case checked < nobj:
			b.note("WARNING %s: only %d of %d objects https://%s/obj/%s/N could be fetched twice", t.name, checked, nobj, t.origin, kind)
			rw.warn[t.name] = fmt.Sprintf("%d/%d unverified", nobj-checked, nobj)
		case n > 0:
			b.note("WARNING %s: %d of %d second fetches of https://%s/obj/%s/N were not hits (%s)",
				t.name, n, nobj, t.origin, kind, hitHeaderName(t))
			rw.warn[t.name] = fmt.Sprintf("%d/%d not hits", n, nobj)
		}
	}
	b.checkAlive("after the HTTPS warm-up of " + kind + " objects")
	ts = b.tlsTargets()
	results := b.loadRounds(kind+" HTTPS hits", ts, paths, size)
	plain := b.hitRows[kind]
	for _, t := range ts {
		res := results[t.name]
		v, rate := hitRate(kind, res)
		b.cpu = append(b.cpu, cpuRow{phase: kind + " HTTPS hits", target: t.name, rate: rate, cores: res.cpu})
		if res.errs+res.bad > 0 {
			t.noteErr("%s HTTPS hits: %s", kind, res.firstErr)
			b.note("%s: %s HTTPS hits: %d transport errors, %d bad responses (first: %s)", t.name, kind, res.errs, res.bad, res.firstErr)
			rw.cells[t.name], vs.cells[t.name] = errCell(v), naCell("—")
			continue
		}
		rw.cells[t.name] = val(v)
		switch {
		case plain == nil:
			vs.cells[t.name] = naCell("no plain row")
		case plain.cells[t.name].ok && plain.cells[t.name].v > 0:
			vs.cells[t.name] = val(v / plain.cells[t.name].v)
		default:
			vs.cells[t.name] = naCell("—")
		}
	}
	if plain == nil {
		b.note("%s HTTPS hits: run the %s phase too (-only %s,https%s) for the ratio to plain-HTTP hits", kind, kind, kind, kind)
	}
}

// phaseLeaf times fresh connections to stageproxy that send CONNECT and
// finish a TLS handshake, then close: leafTrials to names never seen
// before (the proxy signs a leaf during the handshake) interleaved with as
// many to one name whose leaf is cached. No request follows, so the proxy
// never dials the made-up names. Every leaf must name its host, and the
// repeat host's leaf must be the same certificate each time.
func (b *bench) phaseLeaf() {
	newRow, repRow, ratioRow := b.newRow(rowLeafNew), b.newRow(rowLeafRepeat), b.newRow(rowLeafRatio)
	defer b.tlsCells(newRow, repRow, ratioRow)
	for _, r := range []*row{newRow, repRow, ratioRow} {
		r.cells[colDirect] = naCell("—")
	}
	if !slices.Contains(b.tlsTargets(), b.tlsProxy) {
		return
	}
	t := b.tlsProxy
	_, port, _ := net.SplitHostPort(b.origin.tlsAddr)
	handshake := func(host string) (time.Duration, *x509.Certificate, error) {
		conf := t.tlsConf.Clone()
		conf.ServerName = host
		start := time.Now()
		c, cs, err := dialTLS(t.addr, net.JoinHostPort(host, port), conf, start.Add(10*time.Second))
		d := time.Since(start)
		if err != nil {
			return 0, nil, err
		}
		c.Close()
		if len(cs.PeerCertificates) == 0 {
			return 0, nil, fmt.Errorf("%s: no certificate presented", host)
		}
		leaf := cs.PeerCertificates[0]
		if !slices.Contains(leaf.DNSNames, host) || leaf.VerifyHostname(host) != nil {
			return 0, nil, fmt.Errorf("%s: the leaf names %v, not the host", host, leaf.DNSNames)
		}
		return d, leaf, nil
	}
	fail := func(err error) {
		t.noteErr("leaf phase: %v", err)
		b.note("stageproxy: leaf phase: %v", err)
		for _, r := range []*row{newRow, repRow, ratioRow} {
			r.cells[colStageproxy] = naCell("ERR")
		}
	}
	repeat := "repeat-" + b.nonce + ".bench.test"
	logf("leaf signing: %d new hosts and %d repeats of %s, CONNECT + TLS handshake each", leafTrials, leafTrials, repeat)
	var repeatSerial *big.Int
	for range 3 { // sign the repeat host's leaf and warm the code paths
		_, leaf, err := handshake(repeat)
		if err != nil {
			fail(err)
			return
		}
		if repeatSerial == nil {
			repeatSerial = leaf.SerialNumber
		}
	}
	var fresh, again []float64
	resigned := 0
	seen := map[string]bool{}
	for i := range leafTrials {
		host := fmt.Sprintf("h%d-%s.bench.test", i, b.nonce)
		d, leaf, err := handshake(host)
		if err != nil {
			fail(err)
			return
		}
		if seen[leaf.SerialNumber.String()] {
			fail(fmt.Errorf("%s: leaf serial %s was presented for another host before", host, leaf.SerialNumber))
			return
		}
		seen[leaf.SerialNumber.String()] = true
		fresh = append(fresh, ms(d))
		d, leaf, err = handshake(repeat)
		if err != nil {
			fail(err)
			return
		}
		if leaf.SerialNumber.Cmp(repeatSerial) != 0 {
			resigned++
		}
		again = append(again, ms(d))
	}
	mNew, mRep := median(fresh), median(again)
	newRow.cells[colStageproxy], repRow.cells[colStageproxy] = val(mNew), val(mRep)
	if mRep > 0 {
		ratioRow.cells[colStageproxy] = val(mNew / mRep)
	}
	newRow.extra[colStageproxy] = fmt.Sprintf("fresh TCP connection to the proxy, CONNECT hN.bench.test:%s, full TLS handshake "+
		"(no resumption) with ServerName hN.bench.test, close; no request, so the proxy never dials the name", port)
	if resigned > 0 {
		b.note("WARNING stageproxy: %d of %d repeat-host handshakes presented a different leaf than the first (leaf not cached)", resigned, leafTrials)
	}
}
