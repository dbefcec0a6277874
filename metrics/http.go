package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// RouteUnmatched is the route label of a request no ServeMux pattern
// served: an unknown path, a wrong method, a path-cleaning redirect.
const RouteUnmatched = "unmatched"

// httpBuckets span a forward-auth request answered from memory (well under
// a millisecond) to a write waiting on a replicated store (seconds).
var httpBuckets = []float64{
	100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
	100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10,
}

// codeLabels are the code label values of the valid status codes, so that
// recording a request does not format one.
var codeLabels = func() (l [600]string) {
	for c := 100; c < len(l); c++ {
		l[c] = strconv.Itoa(c)
	}
	return l
}()

// InstrumentHTTP wraps next, which should be (or end in) the http.ServeMux
// of the API, counting each request in tokenledger_http_requests_total and
// timing it in tokenledger_http_request_duration_seconds.
//
// The route label is the pattern the ServeMux matched (http.Request.Pattern,
// which the mux sets on the *http.Request it is handed), or RouteUnmatched,
// so paths a client makes up never become label values; a method outside the
// standard ones is counted as "other". When a handler between InstrumentHTTP
// and the mux hands the mux another *http.Request (r.WithContext, for
// example), wrap the mux in RecordRoute so the pattern still reaches
// InstrumentHTTP. The code is the status the handler wrote (200 if it wrote
// none). A request whose handler panics is not recorded.
//
// The ResponseWriter next receives implements Unwrap, so
// http.NewResponseController reaches the server's (Flush, Hijack,
// deadlines). For a nil m, InstrumentHTTP returns next.
func (m *Metrics) InstrumentHTTP(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &responseWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), responseWriterKey{}, rw))
		next.ServeHTTP(rw, r)
		d := time.Since(start)

		route := r.Pattern
		if route == "" {
			route = rw.route
		}
		code := rw.code
		if code == 0 {
			code = http.StatusOK
		}
		// For a CONNECT request the mux's redirect carries the request's
		// own path as its pattern.
		if route == "" || r.Method == http.MethodConnect && code == http.StatusTemporaryRedirect {
			route = RouteUnmatched
		}
		codeLabel := "other"
		if code >= 100 && code < len(codeLabels) {
			codeLabel = codeLabels[code]
		}
		m.httpRequests.WithLabelValues(route, methodLabel(r.Method), codeLabel).Inc()
		m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
	})
}

// RecordRoute wraps a ServeMux so that InstrumentHTTP learns the pattern that
// served a request even when the *http.Request the mux received is not the
// one InstrumentHTTP passed on (a handler between them called r.WithContext).
// It must run in the goroutine of InstrumentHTTP's next, before that
// returns: place it directly around the mux. Outside InstrumentHTTP it
// only calls mux.
func RecordRoute(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if rw, ok := r.Context().Value(responseWriterKey{}).(*responseWriter); ok && r.Pattern != "" {
			rw.route = r.Pattern
		}
	})
}

// responseWriterKey is the context key of the request's *responseWriter.
type responseWriterKey struct{}

// responseWriter records the status code written, and the route RecordRoute
// found.
type responseWriter struct {
	http.ResponseWriter
	code  int
	route string
}

// WriteHeader records the first final status code and passes it on.
func (w *responseWriter) WriteHeader(code int) {
	// Informational codes may precede the final one; 101 is final.
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write passes b on; without an earlier WriteHeader it sends 200.
func (w *responseWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// methodLabel returns method if it is a standard HTTP method, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}
