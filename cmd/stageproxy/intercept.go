package main

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/stageproxy/stageproxy/config"
	"github.com/stageproxy/stageproxy/mitm"
	"github.com/stageproxy/stageproxy/proxy"
)

// interceptOptions turns the config's mitmCA, mitmHosts and upstreamCA
// (or --mitm-ca, --mitm-hosts, --upstream-ca) into the proxy's TLS options:
// which hosts are intercepted with which CA, and the roots origins are
// verified against (the system's, plus upstreamCA). Interception is off
// unless both mitmCA and mitmHosts are set.
func interceptOptions(cfg *config.Config) (*proxy.Intercept, *x509.CertPool, error) {
	var roots *x509.CertPool
	if cfg.UpstreamCA != "" {
		data, err := os.ReadFile(cfg.UpstreamCA)
		if err != nil {
			return nil, nil, usageErrorf("--upstream-ca: %v", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(data) {
			return nil, nil, usageErrorf("--upstream-ca: no PEM certificate in %s (want a file of PEM CERTIFICATE blocks)", cfg.UpstreamCA)
		}
	}
	switch {
	case cfg.MitmCA == "" && cfg.MitmHosts == "":
		return nil, roots, nil
	case cfg.MitmCA == "":
		return nil, nil, usageErrorf("--mitm-hosts needs --mitm-ca (the directory `stageproxy ca init --out DIR` made)")
	case cfg.MitmHosts == "":
		return nil, nil, usageErrorf("--mitm-ca needs --mitm-hosts (the hosts to intercept, e.g. pypi.org,files.pythonhosted.org,registry.npmjs.org)")
	}
	hosts, err := mitm.ParseHosts(cfg.MitmHosts)
	if err != nil {
		return nil, nil, usageErrorf("--mitm-hosts: %v", err)
	}
	ca, err := mitm.Load(cfg.MitmCA)
	if err != nil {
		return nil, nil, fmt.Errorf("--mitm-ca: %w", err)
	}
	return &proxy.Intercept{Match: hosts.Match, Leaf: ca.Leaf}, roots, nil
}
