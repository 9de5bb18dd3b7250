package mitm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"strings"
	"time"
)

const (
	// maxLeaves bounds the leaf cache. A build proxy intercepts a handful
	// of registry hosts, but a *.suffix entry could name many; the
	// cache must not grow with them (goproxy discussions #351, #387).
	maxLeaves = 1024
	// leafValidity is the CA/Browser Forum's limit for server certificates
	// (397 days); clients that enforce it for private CAs accept ours.
	leafValidity = 397 * 24 * time.Hour
	// leafRenew: a cached leaf with less than this left is signed again.
	leafRenew = 24 * time.Hour
)

// leafEntry is one host's leaf. done is closed once cert or err is set;
// callers that find the entry before then wait on it, so concurrent first
// requests for a host sign once.
type leafEntry struct {
	host string
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// Leaf returns a TLS certificate for host, a DNS name or an IP literal
// without a port: an ECDSA P-256 key, host as its only subject alternative
// name, extended key usage serverAuth, key usage digitalSignature, valid
// from now-1h to now+397 days or the CA's expiry, whichever is sooner.
// Certificate holds the chain [leaf, CA] and Leaf the parsed leaf.
//
// Leaves are cached per host, at most 1024 hosts, least recently used
// first out; a leaf with less than a day left is signed again. Concurrent
// first requests for one host sign once.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	name, err := leafName(host)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	if el, ok := ca.leaves[name]; ok {
		e := el.Value.(*leafEntry)
		if !ca.staleLocked(e) {
			ca.lru.MoveToFront(el)
			ca.mu.Unlock()
			<-e.done
			return e.cert, e.err
		}
		ca.lru.Remove(el)
		delete(ca.leaves, name)
	}
	e := &leafEntry{host: name, done: make(chan struct{})}
	ca.leaves[name] = ca.lru.PushFront(e)
	for ca.lru.Len() > ca.max {
		old := ca.lru.Remove(ca.lru.Back()).(*leafEntry)
		delete(ca.leaves, old.host)
	}
	ca.mu.Unlock()

	e.cert, e.err = ca.sign(name)
	close(e.done)
	if e.err != nil {
		// Do not cache a failure: the next request tries again.
		ca.mu.Lock()
		if el, ok := ca.leaves[name]; ok && el.Value == e {
			ca.lru.Remove(el)
			delete(ca.leaves, name)
		}
		ca.mu.Unlock()
	}
	return e.cert, e.err
}

// staleLocked reports whether e holds a leaf that is about to expire. An
// entry still being signed is not stale.
func (ca *CA) staleLocked(e *leafEntry) bool {
	select {
	case <-e.done:
	default:
		return false
	}
	return e.err != nil || ca.now().Add(leafRenew).After(e.cert.Leaf.NotAfter)
}

// leafName normalises host for Leaf: lower case, no trailing dot, IP
// literals in canonical form (brackets around IPv6 accepted).
func leafName(host string) (string, error) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String(), nil
	}
	if !validName(h) {
		return "", fmt.Errorf("leaf certificate: invalid host %q (want a DNS name or an IP address, without a port)", host)
	}
	return h, nil
}

// sign makes a new leaf for name, which leafName has normalised.
func (ca *CA) sign(name string) (*tls.Certificate, error) {
	ca.signs.Add(1)
	now := ca.now()
	notAfter := now.Add(leafValidity)
	if ca.cert.NotAfter.Before(notAfter) {
		notAfter = ca.cert.NotAfter
	}
	if !now.Before(notAfter) {
		return nil, fmt.Errorf("leaf certificate for %s: the CA expired on %s (make a new one with stageproxy ca init)", name, ca.cert.NotAfter.UTC().Format(time.DateOnly))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// A subject as well as the SAN: OpenSSL's strict mode wants a
		// critical SAN when the subject is empty.
		Subject:               pkix.Name{CommonName: name, Organization: []string{"stageproxy"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, // CA:FALSE
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	// Go copies the CA's subject key identifier into the leaf's authority
	// key identifier, which OpenSSL's strict mode requires.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: %w", name, err)
	}
	return &tls.Certificate{
		Certificate: [][]byte{der, ca.cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}
