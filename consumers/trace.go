package consumers

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/domain"
)

// tracer makes the batch spans, from the global tracer provider (the
// no-op one unless the process set tracing up), looked up at each use so
// that it follows the provider installed last.
func tracer() trace.Tracer { return otel.Tracer("github.com/tokenledger/tokenledger/consumers") }

// Span names of the projection batches.
const (
	SpanLifecycleBatch = "projection.lifecycle.batch"
	SpanUsageBatch     = "projection.usage.batch"
)

// Attributes of a batch span.
const (
	AttrProjection    = attribute.Key("tokenledger.projection")
	AttrEvents        = attribute.Key("tokenledger.event_count")
	AttrFirstSequence = attribute.Key("tokenledger.first_sequence")
	AttrLastSequence  = attribute.Key("tokenledger.last_sequence")
	AttrApplied       = attribute.Key("tokenledger.applied")
	AttrCheckpoint    = attribute.Key("tokenledger.checkpoint")
)

// startBatchSpan starts the span of one projection batch of events (at
// least one), a trace of its own.
func startBatchSpan(ctx context.Context, name, projection string, events []domain.Envelope) (context.Context, trace.Span) {
	return tracer().Start(ctx, name, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		AttrProjection.String(projection),
		AttrEvents.Int(len(events)),
		AttrFirstSequence.Int64(int64(events[0].Sequence)),
		AttrLastSequence.Int64(int64(events[len(events)-1].Sequence)),
	))
}

// batchRetry records on span a failed attempt that will be retried.
func batchRetry(span trace.Span, err error) {
	if span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(attribute.String("error", err.Error())))
	}
}

// batchFailed marks span failed by err.
func batchFailed(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
