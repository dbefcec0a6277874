package stack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// FreePort returns a TCP port on host that was free when FreePort returned:
// it asks the kernel for an ephemeral port by listening on port 0, then
// closes the listener.
//
// The answer is inherently racy: another process may take the port before
// the caller binds it. Callers that start a server on the port must be ready
// to pick another one when the bind fails; StartPostgres does so.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	return port, nil
}

// PortOrFree returns preferred if a TCP listener can bind it on host right
// now, and otherwise a free port from FreePort. A preferred port of 0 means
// no preference. The same race as for FreePort applies: the port may be
// taken again before the caller binds it.
func PortOrFree(host string, preferred int) (int, error) {
	if preferred < 0 || preferred > 65535 {
		return 0, fmt.Errorf("preferred port %d is outside 0..65535", preferred)
	}
	if preferred == 0 {
		return FreePort(host)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(preferred)))
	if err != nil {
		return FreePort(host)
	}
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("probe port %d on %s: %w", preferred, host, err)
	}
	return preferred, nil
}

// portInUse reports whether another socket is listening on host:port, as
// seen by trying to bind it.
func portInUse(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	_ = l.Close()
	return false
}
