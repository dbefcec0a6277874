package validator_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tokenledger/tokenledger/validator"
)

// A store lookup of a young token leaves the validator's memory, so it has
// a span: a child of the span of the validation that started it, naming
// the token id and whether the store had it. The validation of a token in
// memory makes no span.
func TestLookupSpan(t *testing.T) {
	// Not parallel: it installs the global tracer provider.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})
	e := newEnv(t)
	v := e.start(t, validator.Config{})
	release := validator.PauseTail(v)
	defer release()
	secret, tok := e.issue(t, "alice", time.Now(), nil)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	_, err := v.Validate(ctx, secret)
	wantErr(t, err, nil)
	inTrace := func() int {
		n := 0
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() == parent.SpanContext().TraceID() {
				n++
			}
		}
		return n
	}
	before := inTrace()
	_, err = v.Validate(ctx, secret)
	wantErr(t, err, nil)
	if after := inTrace(); after != before {
		t.Errorf("%d spans made by validating a token in memory, want none", after-before)
	}
	parent.End()

	var lookups []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == validator.SpanLookup {
			lookups = append(lookups, sp)
		}
	}
	if len(lookups) != 1 {
		t.Fatalf("%d lookup spans, want 1", len(lookups))
	}
	sp := lookups[0]
	if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("lookup span's parent %v, want the validation's span %v", sp.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range sp.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs[string(validator.AttrTokenID)] != tok.ID().String() || attrs[string(validator.AttrFound)] != "true" {
		t.Errorf("lookup span attributes %v, want token %s found", attrs, tok.ID())
	}
}
