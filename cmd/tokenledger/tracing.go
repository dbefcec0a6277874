package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/internal/tracing"
)

// tracingFlushTimeout bounds the export of the spans still buffered when a
// command stops.
const tracingFlushTimeout = 5 * time.Second

// startTracing sets tracing up for a long-running command (role: serve,
// project, dev) as the OTEL_* environment variables ask (package
// tracing). The provider is nil when they ask for none. stop exports what
// is buffered; call it once the command's work has stopped.
func startTracing(ctx context.Context, role string, log *slog.Logger) (tp trace.TracerProvider, stop func(), err error) {
	tp, shutdown, err := tracing.Start(ctx, tracing.Options{Role: role, Log: log, Console: os.Stderr})
	if err != nil {
		return nil, nil, err
	}
	if tp != nil {
		log.Info("tracing on: exporting spans as the OTEL_* variables say")
	}
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("tracing: exporting the last spans failed", "error", err)
		}
	}, nil
}
