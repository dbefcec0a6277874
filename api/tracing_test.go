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

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/apitest"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/stacktest"
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
