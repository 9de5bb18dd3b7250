//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// peekIdle reports whether an idle connection is still open with nothing
// waiting to be read (usable), and whether bytes are waiting (pending),
// without reading or blocking: the origin may have closed it (a read would
// return EOF) or sent bytes no request asked for. A connection that cannot
// be asked (not a socket) counts as usable; if the origin did close it, the
// request fails before any response byte and is sent again on another.
func peekIdle(c net.Conn) (usable, pending bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true, false
	}
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read and not closed. Otherwise bytes are waiting
		// (n > 0), the origin closed (n == 0), or the socket failed.
		usable = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		pending = err == nil && n > 0
		return true
	})
	return err == nil && usable, pending
}
