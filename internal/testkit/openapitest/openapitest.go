// Package openapitest checks real HTTP exchanges against tokenledger's
// OpenAPI document, for end-to-end tests. A Checker wraps an
// http.RoundTripper: every response that passes through it is checked
// against the operation it answers (documented status, headers, content type
// and body, error bodies included), requests are checked too when a test asks
// for it, and every (operation, status) pair seen is counted so a suite can
// require that it exercised every documented answer.
//
// Mismatches are reported with the testing.TB given to New (Error, never
// Fatal), naming the method, path, status and problem; the exchange itself
// is passed through unchanged. Reports never contain a token secret.
//
// A path parameter marked with the extension "x-multi-segment": true spans
// the rest of the path, slashes included, as a net/http.ServeMux "{name...}"
// wildcard does, which OpenAPI 3.0 cannot say by itself: the checker routes
// "/v1/auth/orders/7" to "/v1/auth/{path}" with path "orders/7". Path
// parameters are validated percent-decoded, as the server reads them.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// RequestValidationHeader, set on a request to any value, asks the checker
// to validate that request against the document, as WithRequestValidation
// does. The checker removes it before the request is sent.
const RequestValidationHeader = "X-Openapitest-Validate-Request"

// OperationStatus is one answer of one operation: the operationId and the
// HTTP status. Operation is empty for requests that match no operation of
// the document (an unknown path or a method the path does not have).
type OperationStatus struct {
	Operation string
	Status    int
}

// String returns "operationId status".
func (o OperationStatus) String() string {
	op := o.Operation
	if op == "" {
		op = "(no operation)"
	}
	return op + " " + strconv.Itoa(o.Status)
}

// Checker validates exchanges against one OpenAPI 3 document. It is safe for
// concurrent use by any number of requests.
type Checker struct {
	t           testing.TB
	doc         *openapi3.T
	router      routers.Router
	errorSchema *openapi3.Schema

	mu   sync.Mutex
	seen map[OperationStatus]int
}

// New loads and validates doc (an OpenAPI 3 document as JSON) and returns a
// Checker that reports to t. It fails t at once if the document does not
// load or is not valid. The document's servers are ignored: requests match
// by path whatever host and port the server under test listens on.
func New(t testing.TB, doc []byte) *Checker {
	t.Helper()
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(doc)
	if err != nil {
		t.Fatalf("openapitest: load the document: %v", err)
	}
	if err := d.Validate(loader.Context); err != nil {
		t.Fatalf("openapitest: the document is not valid: %v", err)
	}
	d.Servers = nil
	routed, err := multiSegmentRoutes(d)
	if err != nil {
		t.Fatalf("openapitest: %v", err)
	}
	router, err := gorillamux.NewRouter(routed)
	if err != nil {
		t.Fatalf("openapitest: route the document: %v", err)
	}
	c := &Checker{t: t, doc: d, router: router, seen: map[OperationStatus]int{}}
	if d.Components != nil {
		if s := d.Components.Schemas["Error"]; s != nil {
			c.errorSchema = s.Value
		}
	}
	return c
}

// MultiSegmentExtension, set to true on a path parameter, marks it as
// spanning the rest of the path, slashes included. It must be the last
// segment of its path.
const MultiSegmentExtension = "x-multi-segment"

// multiSegmentRoutes returns doc for routing: a shallow copy whose paths
// with a multi-segment parameter are keyed by a gorilla/mux template that
// lets it match the rest of the path ("/v1/auth/{path:.*}"). The path items
// and operations are doc's own, so validation sees the document as written.
func multiSegmentRoutes(doc *openapi3.T) (*openapi3.T, error) {
	var opts []openapi3.NewPathsOption
	for path, item := range doc.Paths.Map() {
		key := path
		params := slices.Clone(item.Parameters)
		for _, op := range item.Operations() {
			params = append(params, op.Parameters...)
		}
		for _, p := range params {
			if p.Value == nil {
				continue
			}
			v, ok := p.Value.Extensions[MultiSegmentExtension]
			if !ok || v != true {
				continue
			}
			last := "/{" + p.Value.Name + "}"
			if p.Value.In != openapi3.ParameterInPath || !strings.HasSuffix(path, last) {
				return nil, fmt.Errorf("%s: parameter %q is %s but not the last segment of the path", path, p.Value.Name, MultiSegmentExtension)
			}
			key = strings.TrimSuffix(path, last) + "/{" + p.Value.Name + ":.*}"
		}
		opts = append(opts, openapi3.WithPath(key, item))
	}
	routed := *doc
	routed.Paths = openapi3.NewPaths(opts...)
	return &routed, nil
}

type validateRequestKey struct{}

// WithRequestValidation returns a context that asks the checker to validate
// the request made with it against the document. Requests are not validated
// otherwise, so tests may send deliberately malformed requests; their
// answers are always validated.
func WithRequestValidation(ctx context.Context) context.Context {
	return context.WithValue(ctx, validateRequestKey{}, true)
}

// Transport returns a RoundTripper that sends requests with base (nil means
// http.DefaultTransport) and checks each exchange. The response reaches the
// caller with its body intact whatever the checks find; transport errors
// are returned unchanged and not reported.
func (c *Checker) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base}
}

// Client returns an http.Client whose transport is Transport(nil).
func (c *Checker) Client() *http.Client {
	return &http.Client{Transport: c.Transport(nil)}
}

// Seen returns how many times each (operation, status) pair passed through
// the checker's transports so far. The map is a copy.
func (c *Checker) Seen() map[OperationStatus]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.seen)
}

// Documented returns every (operation, status) pair the document declares,
// sorted by operation and status.
func (c *Checker) Documented() []OperationStatus {
	var out []OperationStatus
	for _, item := range c.doc.Paths.Map() {
		for _, op := range item.Operations() {
			for code := range op.Responses.Map() {
				if n, err := strconv.Atoi(code); err == nil {
					out = append(out, OperationStatus{Operation: op.OperationID, Status: n})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b OperationStatus) int {
		if c := strings.Compare(a.Operation, b.Operation); c != 0 {
			return c
		}
		return a.Status - b.Status
	})
	return out
}

// RequireCoverage fails t, listing them, if documented (operation, status)
// pairs for which want returns true were never seen. A nil want requires
// every documented pair. Call it after the exchanges it covers are done.
func (c *Checker) RequireCoverage(t testing.TB, want func(operation string, status int) bool) {
	t.Helper()
	seen := c.Seen()
	var missing []string
	for _, p := range c.Documented() {
		if want != nil && !want(p.Operation, p.Status) {
			continue
		}
		if seen[p] == 0 {
			missing = append(missing, "  "+p.String())
		}
	}
	if len(missing) > 0 {
		t.Errorf("openapitest: %d documented answers were never exercised:\n%s", len(missing), strings.Join(missing, "\n"))
	}
}

type transport struct {
	c    *Checker
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	validateRequest := req.Header.Get(RequestValidationHeader) != ""
	if v, ok := req.Context().Value(validateRequestKey{}).(bool); ok && v {
		validateRequest = true
	}

	out := req.Clone(req.Context())
	out.Header.Del(RequestValidationHeader)
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("openapitest: read the request body: %w", err)
		}
		reqBody = b
		out.Body = io.NopCloser(bytes.NewReader(b))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}

	ex := exchange{c: tr.c, method: out.Method, target: out.URL.RequestURI()}
	ex.route, ex.params, ex.routeErr = tr.c.findRoute(out)
	if ex.route != nil {
		ex.operation = ex.route.Operation.OperationID
	}
	if validateRequest {
		ex.checkRequest(out, reqBody)
	}

	resp, err := tr.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("openapitest: read the response body of %s %s: %w", ex.method, ex.target, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))

	tr.c.record(OperationStatus{Operation: ex.operation, Status: resp.StatusCode})
	ex.checkResponse(out, resp, respBody)
	return resp, nil
}

// findRoute matches req to an operation and returns its path parameters
// percent-decoded, as net/http's PathValue reads them. A HEAD request is
// matched as the GET it mirrors, as net/http serves it.
func (c *Checker) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	r := req
	if req.Method == http.MethodHead {
		r = req.Clone(req.Context())
		r.Method = http.MethodGet
	}
	route, params, err := c.router.FindRoute(r)
	for name, raw := range params {
		if v, uerr := url.PathUnescape(raw); uerr == nil {
			params[name] = v
		}
	}
	return route, params, err
}

func (c *Checker) record(p OperationStatus) {
	c.mu.Lock()
	c.seen[p]++
	c.mu.Unlock()
}

// exchange is one request and its answer as the checks see them.
type exchange struct {
	c         *Checker
	method    string
	target    string
	operation string
	route     *routers.Route
	params    map[string]string
	routeErr  error
}

func (ex *exchange) options() *openapi3filter.Options {
	return &openapi3filter.Options{
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults: true,
		MultiError:          true,
		// Values stay out of messages: a body may hold a secret.
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
}

func (ex *exchange) checkRequest(req *http.Request, body []byte) {
	if ex.route == nil {
		ex.reportRequest(fmt.Sprintf("matches no operation of the document: %v", ex.routeErr))
		return
	}
	vreq := req.Clone(req.Context())
	if body != nil {
		vreq.Body = io.NopCloser(bytes.NewReader(body))
		vreq.GetBody = nil
	}
	err := openapi3filter.ValidateRequest(req.Context(), &openapi3filter.RequestValidationInput{
		Request:    vreq,
		PathParams: ex.params,
		Route:      ex.route,
		Options:    ex.options(),
	})
	ex.reportRequest(problems(err)...)
}

func (ex *exchange) checkResponse(req *http.Request, resp *http.Response, body []byte) {
	if ex.route == nil {
		ex.checkUnrouted(resp, body)
		return
	}
	ref := ex.route.Operation.Responses.Status(resp.StatusCode)
	if ref == nil || ref.Value == nil {
		ex.reportResponse(resp.StatusCode, fmt.Sprintf("status %d is not documented for this operation", resp.StatusCode))
		return
	}
	opts := ex.options()
	opts.IncludeResponseStatus = true
	err := openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: ex.params,
			Route:      ex.route,
			Options:    opts,
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: opts,
	})
	found := problems(err)
	if len(ref.Value.Content) == 0 && len(body) > 0 {
		found = append(found, fmt.Sprintf("the documented answer has no body, got %d bytes", len(body)))
	}
	ex.reportResponse(resp.StatusCode, found...)
}

// checkUnrouted checks the answer to a request that matches no operation:
// an unknown path must be 404 not_found, a method the path does not have
// 405 method_not_allowed with an Allow header naming the documented
// methods; both with the Error body and X-Request-Id.
func (ex *exchange) checkUnrouted(resp *http.Response, body []byte) {
	wantStatus, wantCode := http.StatusNotFound, "not_found"
	if errors.Is(ex.routeErr, routers.ErrMethodNotAllowed) {
		wantStatus, wantCode = http.StatusMethodNotAllowed, "method_not_allowed"
	}
	if resp.StatusCode != wantStatus {
		ex.reportResponse(resp.StatusCode, fmt.Sprintf("the request matches no operation (%v): want status %d, got %d", ex.routeErr, wantStatus, resp.StatusCode))
		return
	}
	if resp.Header.Get("X-Request-Id") == "" {
		ex.reportResponse(resp.StatusCode, "no X-Request-Id header")
	}
	if wantStatus == http.StatusMethodNotAllowed {
		ex.checkAllow(resp)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		ex.reportResponse(resp.StatusCode, fmt.Sprintf("Content-Type %q, want application/json", ct))
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		ex.reportResponse(resp.StatusCode, fmt.Sprintf("the body is not JSON: %v", err))
		return
	}
	if ex.c.errorSchema != nil {
		if err := ex.c.errorSchema.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors(), openapi3.DisableSchemaErrorDetails()); err != nil {
			ex.reportResponse(resp.StatusCode, fmt.Sprintf("the body does not match the Error schema: %v", err))
			return
		}
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err == nil && e.Error.Code != wantCode {
		ex.reportResponse(resp.StatusCode, fmt.Sprintf("error code %q, want %q", e.Error.Code, wantCode))
	}
}

func (ex *exchange) checkAllow(resp *http.Response) {
	allow := resp.Header.Values("Allow")
	if len(allow) == 0 {
		ex.reportResponse(resp.StatusCode, "405 without an Allow header")
		return
	}
	allowed := map[string]bool{}
	for _, v := range allow {
		for m := range strings.SplitSeq(v, ",") {
			allowed[strings.ToUpper(strings.TrimSpace(m))] = true
		}
	}
	// The method-not-allowed route carries no path item, so find the
	// documented methods of the path by routing each of them.
	probe, err := http.NewRequest(http.MethodGet, ex.target, nil)
	if err != nil {
		ex.reportResponse(resp.StatusCode, fmt.Sprintf("cannot route the path to check Allow: %v", err))
		return
	}
	for _, m := range []string{"GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE"} {
		probe.Method = m
		if route, _, err := ex.c.router.FindRoute(probe); err == nil && route != nil && !allowed[m] {
			ex.reportResponse(resp.StatusCode, fmt.Sprintf("Allow %q does not list the documented method %s", strings.Join(allow, ", "), m))
		}
	}
}

// reportRequest reports the problems of the request, if any, as one error.
func (ex *exchange) reportRequest(problems ...string) {
	if len(problems) == 0 {
		return
	}
	ex.c.t.Error(redact(fmt.Sprintf("openapitest: request %s %s (%s): %s", ex.method, ex.target, ex.operationName(), joinProblems(problems))))
}

// reportResponse reports the problems of the answer, if any, as one error.
func (ex *exchange) reportResponse(status int, problems ...string) {
	if len(problems) == 0 {
		return
	}
	ex.c.t.Error(redact(fmt.Sprintf("openapitest: %s %s (%s) answered %d: %s", ex.method, ex.target, ex.operationName(), status, joinProblems(problems))))
}

func joinProblems(problems []string) string {
	if len(problems) == 1 {
		return problems[0]
	}
	return "\n  - " + strings.Join(problems, "\n  - ")
}

func (ex *exchange) operationName() string {
	if ex.operation == "" {
		return "no operation"
	}
	return ex.operation
}

// problems splits a validation error into one message per problem, each
// keeping what kin-openapi says the problem is about (the body, a header, a
// parameter).
func problems(err error) []string {
	if err == nil {
		return nil
	}
	// A type switch, not errors.As: this walks the tree kin-openapi builds
	// (MultiError.As would pick one branch of it), it matches no condition.
	switch e := err.(type) {
	case openapi3.MultiError:
		var out []string
		for _, inner := range e {
			out = append(out, problems(inner)...)
		}
		return out
	case *openapi3filter.ResponseError:
		return prefixed(e.Reason, e.Err)
	case *openapi3filter.RequestError:
		about := e.Reason
		switch {
		case e.Parameter != nil:
			about = strings.TrimSpace(fmt.Sprintf("parameter %q in %s %s", e.Parameter.Name, e.Parameter.In, e.Reason))
		case e.RequestBody != nil:
			about = "request body: " + e.Reason
		}
		return prefixed(about, e.Err)
	}
	return []string{strings.TrimSpace(err.Error())}
}

// prefixed returns the problems of err, each prefixed with about; just about
// if err is nil.
func prefixed(about string, err error) []string {
	if err == nil {
		return []string{about}
	}
	inner := problems(err)
	if about == "" {
		return inner
	}
	for i, p := range inner {
		inner[i] = about + ": " + p
	}
	return inner
}

// secretPattern matches tokenledger secrets and anything that starts like
// one, so even a truncated or malformed secret is not printed.
var secretPattern = regexp.MustCompile(`tlk_[0-9A-Za-z_]*`)

// redact removes secrets from a message, keeping the prefix and the first
// characters of the (non-secret) token id so reports stay readable.
func redact(s string) string {
	return secretPattern.ReplaceAllStringFunc(s, func(m string) string {
		const keep = len("tlk_") + 4
		if len(m) > keep {
			m = m[:keep]
		}
		return m + "…[redacted]"
	})
}
