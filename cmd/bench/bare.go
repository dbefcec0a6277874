package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// bareHandler answers every GET as /v1/auth answers a valid token: 200,
// an empty body and the same headers (a request id, the token's id, owner
// and scopes), without looking at the request. It is the ceiling of a Go
// net/http server on this machine.
func bareHandler() http.Handler {
	var seq atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		// 26 characters, like the ULID tokenledger sends.
		id := strconv.FormatUint(seq.Add(1), 36)
		h.Set("X-Request-Id", "01JBENCH00000000000000000000"[:26-len(id)]+id)
		h.Set("X-Token-Id", "01JBENCH0TOKEN000000000000")
		h.Set("X-Token-Owner", "bench-owner-1")
		h.Set("X-Token-Scopes", "read")
		w.WriteHeader(http.StatusOK)
	})
}

// runBare is the bare-server subcommand: it serves bareHandler on a free
// loopback port, prints its URL on stdout, and stops on SIGINT or SIGTERM.
func runBare(args []string) int {
	fs := flag.NewFlagSet("bare-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "host:port to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bare-server: %v\n", err)
		return 1
	}
	srv := &http.Server{
		Handler:           bareHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	fmt.Printf("bare net/http listening on http://%s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "bare-server: %v\n", err)
		return 1
	}
	return 0
}
