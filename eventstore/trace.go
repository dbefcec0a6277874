package eventstore

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/domain"
)

// tracer makes the append spans, from the global tracer provider (the
// no-op one unless the process set tracing up), looked up at each use so
// that it follows the provider installed last.
func tracer() trace.Tracer { return otel.Tracer("github.com/tokenledger/tokenledger/eventstore") }

// Attributes of the append span.
const (
	// AttrSubjectKind is the kind of aggregate the events are on: token,
	// owner, or "mixed" for an atomic append across both.
	AttrSubjectKind = attribute.Key("tokenledger.subject_kind")
	// AttrEventCount is the number of events appended.
	AttrEventCount = attribute.Key("tokenledger.event_count")
	// AttrEventType is the type of the first event ("token.issued.v1").
	AttrEventType = attribute.Key("tokenledger.event_type")
	// AttrStream is the stream appended to.
	AttrStream = attribute.Key("tokenledger.stream")
	// AttrStreamSequence is the stream sequence of the first event stored.
	AttrStreamSequence = attribute.Key("tokenledger.stream_sequence")
	// AttrLastStreamSequence is the stream sequence of the last event
	// stored.
	AttrLastStreamSequence = attribute.Key("tokenledger.last_stream_sequence")
	// AttrAttempt numbers the attempt a retry event reports.
	AttrAttempt = attribute.Key("tokenledger.attempt")
)

// SpanAppend is the name of the span of one Append or AppendAtomic.
const SpanAppend = "eventstore.append"

// startAppendSpan starts the span of appending b.
func (s *Store) startAppendSpan(ctx context.Context, b *batch) (context.Context, trace.Span) {
	kind := string(b.events[0].AggregateKind)
	for _, e := range b.events[1:] {
		if string(e.AggregateKind) != kind {
			kind = "mixed"
			break
		}
	}
	return tracer().Start(ctx, SpanAppend, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		AttrStream.String(s.cfg.Stream),
		AttrSubjectKind.String(kind),
		AttrEventCount.Int(len(b.events)),
		AttrEventType.String(string(b.events[0].Type)),
	))
}

// endAppendSpan records the outcome of an append on its span and ends it.
func endAppendSpan(span trace.Span, stored []domain.Envelope, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, appendErrorKind(err))
	} else if len(stored) > 0 {
		span.SetAttributes(
			AttrStreamSequence.Int64(int64(stored[0].Sequence)),
			AttrLastStreamSequence.Int64(int64(stored[len(stored)-1].Sequence)),
		)
	}
	span.End()
}

// appendErrorKind names the failure of an append for its span's status.
func appendErrorKind(err error) string {
	switch {
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrOutcomeUnknown):
		return "outcome unknown"
	case errors.Is(err, ErrEventIDReused):
		return "event id reused"
	default:
		return "failed"
	}
}
