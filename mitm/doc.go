// Package mitm holds stageproxy's own certificate authority for intercepting
// HTTPS to named registry hosts, the leaf certificates it signs, and the
// host list.
//
// The CA is made by Init (stageproxy ca init) rather than taken from
// goproxy: goproxy's built-in CA has a public private key and no keyUsage
// extension, which Python 3.13's default strict X.509 check rejects ("CA
// cert does not include key usage extension"). Keys are ECDSA P-256, as
// generating an RSA key per CONNECT is expensive (FIELD-NOTES 1.7).
package mitm
