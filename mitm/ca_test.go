package mitm

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// initCA makes a CA in a new temporary directory and returns the directory.
func initCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, _, err := Init(dir, time.Now()); err != nil {
		t.Fatalf("Init(%q) = %v", dir, err)
	}
	return dir
}

// loadCA makes and loads a CA.
func loadCA(t *testing.T) *CA {
	t.Helper()
	dir := initCA(t)
	ca, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(%q) = %v", dir, err)
	}
	return ca
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "ca")
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	certPath, keyPath, err := Init(dir, now)
	if err != nil {
		t.Fatalf("Init(%q) = %v", dir, err)
	}
	if certPath != filepath.Join(dir, "ca.crt") || keyPath != filepath.Join(dir, "ca.key") {
		t.Errorf("Init(%q) = %q, %q, want DIR/ca.crt, DIR/ca.key", dir, certPath, keyPath)
	}
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, certPath: 0o644, keyPath: 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("mode of %s = %v, want %v", path, fi.Mode(), want)
			}
		}
	}
	keyPEM, _ := os.ReadFile(keyPath)
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("%s: want a PKCS#8 PRIVATE KEY block, got %q", keyPath, keyPEM)
	} else if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
		t.Errorf("%s: ParsePKCS8PrivateKey = %v", keyPath, err)
	}

	ca, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(%q) = %v", dir, err)
	}
	c := ca.Certificate()
	host, _ := os.Hostname()
	if want := "stageproxy interception CA (" + host + ", 2026-05-01)"; host != "" && c.Subject.CommonName != want {
		t.Errorf("subject CN = %q, want %q", c.Subject.CommonName, want)
	}
	if len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "stageproxy" {
		t.Errorf("subject O = %q, want [stageproxy]", c.Subject.Organization)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA %v valid %v MaxPathLen %d zero %v, want CA:TRUE pathlen 0",
			c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage = %v, want keyCertSign|cRLSign", c.KeyUsage)
	}
	for _, ext := range c.Extensions {
		// 2.5.29.19 basicConstraints, 2.5.29.15 keyUsage
		if s := ext.Id.String(); (s == "2.5.29.19" || s == "2.5.29.15") && !ext.Critical {
			t.Errorf("extension %s not critical", s)
		}
	}
	if len(c.SubjectKeyId) != 20 {
		t.Errorf("subject key id = %x, want 20 bytes", c.SubjectKeyId)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 129 {
		t.Errorf("serial = %v, want positive, 128 bits", c.SerialNumber)
	}
	if !c.NotBefore.Equal(now.Add(-time.Hour)) || !c.NotAfter.Equal(now.Add(10*365*24*time.Hour)) {
		t.Errorf("validity %v .. %v, want now-1h .. now+10y", c.NotBefore, c.NotAfter)
	}
	if c.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("public key %v, want ECDSA", c.PublicKeyAlgorithm)
	}
	certPEM, _ := os.ReadFile(certPath)
	if !bytes.Equal(ca.CertPEM(), certPEM) {
		t.Errorf("CertPEM() differs from %s", certPath)
	}
}

func TestInitNeverOverwrites(t *testing.T) {
	for _, file := range []string{"ca.key", "ca.crt"} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, file)
			if err := os.WriteFile(path, []byte("precious\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := Init(dir, time.Now())
			if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Init(%q) = %v, want an error naming %s and wrapping ErrExists", dir, err, path)
			}
			if got, _ := os.ReadFile(path); string(got) != "precious\n" {
				t.Errorf("%s = %q after Init, want it unchanged", path, got)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("Init wrote files beside %s: %v", file, entries)
			}
		})
	}
	t.Run("a second init", func(t *testing.T) {
		dir := initCA(t)
		crt, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		key, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
		if _, _, err := Init(dir, time.Now()); !errors.Is(err, ErrExists) {
			t.Fatalf("second Init(%q) = %v, want ErrExists", dir, err)
		}
		crt2, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		key2, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
		if !bytes.Equal(crt, crt2) || !bytes.Equal(key, key2) {
			t.Error("second Init changed the files")
		}
	})
}

func TestLoadErrors(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes")
	}
	t.Run("key readable by others", func(t *testing.T) {
		dir := initCA(t)
		key := filepath.Join(dir, "ca.key")
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if err == nil {
			t.Fatalf("Load(%q) with a 0644 key = nil, want an error", dir)
		}
		for _, want := range []string{key, "0644", "chmod 600 " + key} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Load(%q) = %v, want it to name %q", dir, err, want)
			}
		}
	})
	t.Run("key of another CA", func(t *testing.T) {
		a, b := initCA(t), initCA(t)
		if err := os.Rename(filepath.Join(b, "ca.key"), filepath.Join(a, "ca.key")); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(a); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("Load(%q) with another key = %v, want does not match", a, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "ca init --out "+dir) {
			t.Errorf("Load(%q) of an empty directory = %v, want the ca init hint", dir, err)
		}
	})
	t.Run("not a CA", func(t *testing.T) {
		dir := initCA(t)
		ca, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := ca.Leaf("example.org")
		if err != nil {
			t.Fatal(err)
		}
		other := t.TempDir()
		crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
		der, _ := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
		key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		os.WriteFile(filepath.Join(other, "ca.crt"), crt, 0o644)
		os.WriteFile(filepath.Join(other, "ca.key"), key, 0o600)
		if _, err := Load(other); err == nil || !strings.Contains(err.Error(), "not a CA") {
			t.Errorf("Load of a leaf = %v, want not a CA", err)
		}
	})
}
