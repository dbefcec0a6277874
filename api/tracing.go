package api

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the tracer of the HTTP server spans.
const tracerName = "github.com/tokenledger/tokenledger/api"

// requestIDAttr is the span attribute carrying the request id, which the
// access log line carries too.
const requestIDAttr = attribute.Key("tokenledger.request_id")

// traced makes a server span of every request, a child of the trace the
// caller (a gateway) names in its traceparent header. It must sit between
// withRequest and the routing, on the same *http.Request the ServeMux
// receives: the mux sets the route pattern there, and the span is named
// after it ("POST /v1/tokens", never a path with ids in it). The span
// records the method, the route, the status and the request id; never the
// path, the query or a header, which may carry a secret. A 5xx marks the
// span as failed.
//
// It is installed only when Config.TracerProvider is set: without tracing
// no request pays for it.
func (s *Server) traced(next http.Handler) http.Handler {
	tracer := s.tracerProvider.Tracer(tracerName)
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), requestIDAttr.String(requestID(ctx))))
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		defer func() {
			status := sw.status
			p := recover()
			if p != nil {
				// withRequest, outside, answers 500.
				status = http.StatusInternalServerError
			}
			if status == 0 {
				status = http.StatusOK
			}
			if route := r.Pattern; route != "" {
				// A pattern may name its method ("GET /{$}"): the route
				// is its path.
				if i := strings.IndexByte(route, ' '); i >= 0 {
					route = strings.TrimSpace(route[i+1:])
				}
				span.SetName(r.Method + " " + route)
				span.SetAttributes(semconv.HTTPRoute(route))
			}
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			if status >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			span.End()
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
