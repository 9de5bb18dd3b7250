package mitm

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// File names inside a CA directory.
const (
	CertFile = "ca.crt"
	KeyFile  = "ca.key"
)

// caValidity is how long a CA made by Init is valid. Ten years: the CA is
// installed by hand into every client's trust store, so it should outlive
// the containers that trust it; it only ever signs leaves for the hosts an
// operator names, and its key never leaves the proxy's host.
const caValidity = 10 * 365 * 24 * time.Hour

// ErrExists is wrapped by the error Init returns when ca.crt or ca.key is
// already there: Init never overwrites a CA that clients may already trust.
var ErrExists = errors.New("already exists")

// Init creates a new CA in dir, which is created with mode 0700 if missing:
// dir/ca.crt (mode 0644) and dir/ca.key (mode 0600, a PKCS#8 "PRIVATE KEY"
// PEM block). The key is ECDSA P-256. The certificate's subject is CN
// "stageproxy interception CA (HOSTNAME, DATE)", O "stageproxy", so that a
// user who finds it in a trust store can tell where it came from; it is
// valid from now-1h (clock skew) for 10 years, with basicConstraints
// CA:TRUE, pathlen 0 (critical), keyUsage keyCertSign and cRLSign
// (critical), a subject key identifier and a random 128-bit serial.
//
// Init never overwrites: when either file exists it returns an error naming
// the file and wrapping ErrExists, and writes nothing. It returns the paths
// it wrote.
func Init(dir string, now time.Time) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("%s %w", p, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("check %s: %w", p, err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate CA key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("encode CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return "", "", err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return "", "", err
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown host"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("stageproxy interception CA (%s, %s)", host, now.UTC().Format("2006-01-02")),
			Organization: []string{"stageproxy"},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", fmt.Errorf("create CA certificate: %w", err)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create CA directory: %w", err)
	}
	// The key first, with O_EXCL: should another ca init race us, one of
	// the two fails here and the other's key stays.
	if err := writeExcl(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	if err := writeExcl(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644); err != nil {
		os.Remove(keyPath) // ours: a key without its certificate is of no use
		return "", "", err
	}
	return certPath, keyPath, nil
}

// writeExcl creates path, which must not exist, with data and mode perm
// (set explicitly, whatever the umask).
func writeExcl(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s %w", path, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// randomSerial is a random positive 128-bit serial number (RFC 5280
// §4.1.2.2 allows up to 20 octets).
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}

// subjectKeyID is the SHA-256 of the subjectPublicKey bit string truncated
// to 160 bits (RFC 7093 §2 method 1).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// CA is a loaded CA able to sign leaf certificates. It is safe for
// concurrent use.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	now     func() time.Time // time.Now; tests replace it
	max     int              // most hosts cached; maxLeaves

	signs atomic.Int64 // leaves signed, for tests

	mu     sync.Mutex
	leaves map[string]*list.Element // protects leaves and lru; values are *leafEntry
	lru    list.List                // front: most recently used
}

// Load reads dir/ca.crt and dir/ca.key, as made by Init. It refuses a key
// file readable or writable by group or others, a key that does not match
// the certificate, a certificate that is not a CA allowed to sign
// certificates (basicConstraints CA:TRUE and keyUsage keyCertSign), and an
// expired one. The key may be PKCS#8 (any of RSA, ECDSA, Ed25519), SEC 1
// "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY".
func Load(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w (make a CA with stageproxy ca init --out %s)", err, dir)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	info, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s has mode %04o: a CA key must not be readable or writable by group or others (run chmod 600 %s)", keyPath, perm, keyPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match the certificate %s (want the pair that stageproxy ca init wrote)", keyPath, certPath)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s is not a CA certificate with basicConstraints CA:TRUE and keyUsage keyCertSign (want one made by stageproxy ca init)", certPath)
	}
	if now := time.Now(); !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s (make a new CA with stageproxy ca init, and trust it in the clients)", certPath, cert.NotAfter.UTC().Format(time.DateOnly))
	}
	return newCA(cert, key), nil
}

// newCA is a CA for cert and key, which the caller has checked.
func newCA(cert *x509.Certificate, key crypto.Signer) *CA {
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:     key,
		now:     time.Now,
		max:     maxLeaves,
		leaves:  make(map[string]*list.Element),
	}
}

func parseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New(`no "CERTIFICATE" PEM block (want the ca.crt that stageproxy ca init wrote)`)
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New(`no "PRIVATE KEY" PEM block (want the ca.key that stageproxy ca init wrote)`)
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported key type %T (want ECDSA, RSA or Ed25519)", k)
	}
}

// Certificate returns the CA certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM, as in ca.crt (for the status
// page and docs).
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }
