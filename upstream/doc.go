// Package upstream dials through a parent proxy (HTTP CONNECT with Basic
// credentials, SOCKS4/4a, SOCKS5 with username/password) and maps the
// parent-proxy settings of the config file (Polipo's parentProxy,
// socksParentProxy and friends) to and from the ADDR forms of
// `stageproxy upstream_proxy set`.
package upstream
