//go:build !unix

package proxy

import "net"

// peekIdle cannot look at the socket here: a connection the origin closed is
// found when the request on it fails, and the request is sent again.
func peekIdle(net.Conn) (usable, pending bool) { return true, false }
