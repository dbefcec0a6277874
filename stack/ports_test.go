package stack_test

import (
	"net"
	"runtime"
	"testing"

	"github.com/tokenledger/tokenledger/stack"
)

// portTestHost is the address the port tests bind. On Linux all of
// 127.0.0.0/8 is local, and 127.0.0.2 carries none of the client
// connections the other tests open, whose local ports would otherwise make
// a just-found free port look taken.
func portTestHost() string {
	if runtime.GOOS == "linux" {
		return "127.0.0.2"
	}
	return "127.0.0.1"
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	port, err := stack.FreePort(portTestHost())
	if err != nil {
		t.Fatal(err)
	}
	// That the port is still free by now cannot be asserted: test binaries
	// running in parallel bind ports too (the race FreePort documents).
	if port <= 0 || port > 65535 {
		t.Errorf("FreePort = %d, want a port number", port)
	}
	if _, err := stack.FreePort("256.0.0.1"); err == nil {
		t.Error("FreePort on an invalid host = nil error")
	}
}

func TestPortOrFree(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", net.JoinHostPort(portTestHost(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port
	free, err := stack.FreePort(portTestHost())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		preferred int
		wantSame  bool // the preferred port itself comes back
		wantErr   bool
	}{
		{name: "free preferred port is kept", preferred: free, wantSame: true},
		{name: "taken preferred port is replaced", preferred: heldPort},
		{name: "zero means any free port", preferred: 0},
		{name: "negative port is refused", preferred: -1, wantErr: true},
		{name: "port above 65535 is refused", preferred: 65536, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stack.PortOrFree(portTestHost(), tt.preferred)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("PortOrFree(%d) = %d, want an error", tt.preferred, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSame != (got == tt.preferred) {
				t.Fatalf("PortOrFree(%d) = %d, want same port: %v", tt.preferred, got, tt.wantSame)
			}
			// Whether the port is still free by now cannot be asserted:
			// other test binaries bind ports in parallel, which is the race
			// PortOrFree documents.
			if got == heldPort || got <= 0 || got > 65535 {
				t.Errorf("PortOrFree(%d) = %d, not a usable free port", tt.preferred, got)
			}
		})
	}
}
