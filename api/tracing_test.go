package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/validator"
)

// One issue call through the API of a real stack, with tracing on and a
// gateway's traceparent header, leaves exactly two spans in the gateway's
// trace: the server span, a child of the gateway's span, named by the
// route (not the path) with the method, route, status and request id; and
// under it the span of the event-store append, with the subject kind, the
// event count, the event type and the stream sequence the event got. The
// caller's token is validated from memory: no span for it.
func TestTracingOneIssueCall(t *testing.T) {
	// Not parallel: the event store takes its tracer from the global
	// provider, installed here for the test's duration. Only spans of a
	// sampled trace are recorded, so other work in the process (appends
	// with no parent) leaves nothing.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})
	s := apitest.Start(t, apitest.Options{TracerProvider: tp})

	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
	)
	res := do(t, s, req{
		method: "POST", path: "/v1/tokens", secret: s.Admin,
		body:   sdk.IssueRequest{Owner: "alice", Name: "ci", Scopes: []string{"read"}},
		header: http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}},
	})
	if res.status != http.StatusCreated {
		t.Fatalf("issue: status %d: %s", res.status, res.body)
	}
	seq := s.LastSequence(t)

	var spans []sdktrace.ReadOnlySpan
	stacktest.Eventually(t, 10*time.Second, func() bool {
		spans = spans[:0]
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID().String() == traceID {
				spans = append(spans, sp)
			}
		}
		return len(spans) >= 2
	}, "the spans of the issue call did not end")
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		byName[sp.Name()] = sp
	}
	if len(spans) != 2 || len(byName) != 2 {
		t.Fatalf("spans of the trace: %v, want POST /v1/tokens and %s", names(spans), eventstore.SpanAppend)
	}

	server, ok := byName["POST /v1/tokens"]
	if !ok {
		t.Fatalf("no server span named by the route; spans: %v", names(spans))
	}
	if server.SpanKind() != trace.SpanKindServer {
		t.Errorf("server span kind %v", server.SpanKind())
	}
	if p := server.Parent(); p.SpanID().String() != parentID || !p.IsRemote() {
		t.Errorf("server span's parent %v (remote %v), want the gateway's span %s", p.SpanID(), p.IsRemote(), parentID)
	}
	wantAttrs(t, server, map[attribute.Key]attribute.Value{
		"http.request.method":       attribute.StringValue("POST"),
		"http.route":                attribute.StringValue("/v1/tokens"),
		"http.response.status_code": attribute.Int64Value(http.StatusCreated),
		"tokenledger.request_id":    attribute.StringValue(res.header.Get("X-Request-Id")),
	})

	app, ok := byName[eventstore.SpanAppend]
	if !ok {
		t.Fatalf("no append span; spans: %v", names(spans))
	}
	if app.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("append span's parent %v, want the server span %v", app.Parent().SpanID(), server.SpanContext().SpanID())
	}
	wantAttrs(t, app, map[attribute.Key]attribute.Value{
		eventstore.AttrSubjectKind:        attribute.StringValue("token"),
		eventstore.AttrEventCount:         attribute.Int64Value(1),
		eventstore.AttrEventType:          attribute.StringValue("token.issued.v1"),
		eventstore.AttrStream:             attribute.StringValue(eventstore.DefaultStream),
		eventstore.AttrStreamSequence:     attribute.Int64Value(int64(seq)),
		eventstore.AttrLastStreamSequence: attribute.Int64Value(int64(seq)),
	})
}

// Without a tracer provider the API makes no span, even for a request
// that carries a traceparent and with an SDK provider installed globally.
func TestNoTracingWithoutProvider(t *testing.T) {
	// Not parallel: it installs the global tracer provider.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})
	s := apitest.Start(t, apitest.Options{})
	res := do(t, s, req{
		method: "GET", path: "/v1/auth", secret: s.Admin,
		header: http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	})
	if res.status != http.StatusOK {
		t.Fatalf("auth: status %d: %s", res.status, res.body)
	}
	if got := rec.Ended(); len(got) != 0 {
		t.Errorf("spans without a tracer provider: %v", names(got))
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.Name())
	}
	return out
}

// wantAttrs checks that sp carries each attribute of want with its value.
func wantAttrs(t *testing.T, sp sdktrace.ReadOnlySpan, want map[attribute.Key]attribute.Value) {
	t.Helper()
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range sp.Attributes() {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("span %s: %s = %v (set %v), want %v", sp.Name(), k, g.Emit(), ok, v.Emit())
		}
	}
}

// With tracing on, the work off the request path leaves spans too, each a
// trace of its own: the validator's snapshot load and tail subscription
// at start, a span per lifecycle projection batch naming its events and
// sequences (one of them holds the issued token's event), and a span per
// usage batch once the node's usage of a token reaches the usage consumer.
func TestTracingBackgroundWork(t *testing.T) {
	// Not parallel: it installs the global tracer provider.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})
	s := apitest.Start(t, apitest.Options{TracerProvider: tp})
	issued := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "ci", Scopes: []string{"read"}})
	seq := s.LastSequence(t)
	if st := authStatus(t, s, issued.Secret); st != http.StatusOK {
		t.Fatalf("auth: %d", st)
	}

	attr := func(sp sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
		for _, kv := range sp.Attributes() {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return attribute.Value{}, false
	}
	find := func(name string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
		t.Helper()
		var found sdktrace.ReadOnlySpan
		stacktest.Eventually(t, 20*time.Second, func() bool {
			for _, sp := range rec.Ended() {
				if sp.Name() == name && match(sp) {
					found = sp
					return true
				}
			}
			return false
		}, "no span "+name)
		return found
	}
	anySpan := func(sdktrace.ReadOnlySpan) bool { return true }
	find(validator.SpanSnapshot, func(sp sdktrace.ReadOnlySpan) bool { _, ok := attr(sp, validator.AttrSequence); return ok })
	find(validator.SpanTail, anySpan)
	batch := find(consumers.SpanLifecycleBatch, func(sp sdktrace.ReadOnlySpan) bool {
		first, _ := attr(sp, consumers.AttrFirstSequence)
		last, _ := attr(sp, consumers.AttrLastSequence)
		return first.AsInt64() <= int64(seq) && int64(seq) <= last.AsInt64()
	})
	if n, _ := attr(batch, consumers.AttrEvents); n.AsInt64() < 1 {
		t.Errorf("lifecycle batch span with %d events", n.AsInt64())
	}
	if batch.Parent().IsValid() {
		t.Errorf("a projection batch span has a parent: %v", batch.Parent())
	}
	find(consumers.SpanUsageBatch, func(sp sdktrace.ReadOnlySpan) bool {
		n, _ := attr(sp, consumers.AttrEvents)
		return n.AsInt64() >= 1
	})
}
