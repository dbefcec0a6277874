package validator

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes the spans of the validator's work that leaves memory: the
// snapshot load, the store lookups of young ids, the tail's
// subscriptions. Validate's in-memory path makes none. It comes from the
// global tracer provider (the no-op one unless the process set tracing
// up), looked up at each use so that it follows the provider installed
// last.
func tracer() trace.Tracer { return otel.Tracer("github.com/tokenledger/tokenledger/validator") }

// Span names of the validator.
const (
	SpanSnapshot = "validator.snapshot"
	SpanLookup   = "validator.lookup"
	SpanTail     = "validator.tail.subscribe"
)

// Attributes of the validator's spans.
const (
	AttrSequence = attribute.Key("tokenledger.stream_sequence")
	AttrTokens   = attribute.Key("tokenledger.tokens")
	AttrTokenID  = attribute.Key("tokenledger.token_id")
	AttrFound    = attribute.Key("tokenledger.found")
	// AttrCold reports a lookup of a token left out of memory (beyond
	// the validator's capacity) rather than of a young id.
	AttrCold = attribute.Key("tokenledger.cold")
	// AttrRestarts counts the tail's earlier failures: 0 on the first
	// subscription.
	AttrRestarts = attribute.Key("tokenledger.tail_restarts")
)

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
