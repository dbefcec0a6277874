// Command tokenledger keeps the append-only history of API tokens and
// answers whether a token is valid, and whose it is.
//
// Run `tokenledger --help` for the commands; `tokenledger dev` starts the
// whole system on one machine with embedded defaults.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "tokenledger: %v\n", err)
		os.Exit(1)
	}
}
