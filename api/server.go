package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/metrics"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/validator"
)

// Check is one readiness check: nil when the part it checks is ready.
type Check func(ctx context.Context) error

// Config configures a Server.
type Config struct {
	// Ledger runs the management use cases.
	Ledger *ledger.Service
	// Validator authenticates requests and answers forward-auth and
	// introspection. The ledger must report its appends to it (ledger
	// Config.Observer), so this node sees its own writes at once.
	Validator *validator.Validator
	// Metrics, if set, is served at /metrics and fed by the server.
	Metrics *metrics.Metrics
	// Log receives one line per request (Debug for forward-auth, health
	// and metrics, Info for the rest) and every 5xx with its cause.
	// Secrets never reach it.
	Log *slog.Logger
	// MaxBodyBytes bounds request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MutationTimeout bounds every request that may append to the ledger
	// (issue, set expiry, revoke, rotate, owner revoke, RFC 7009 revoke,
	// and introspection, which may look a young token up): by then it has
	// answered success, or 503 with Retry-After when the store did not
	// answer in time — the outcome is then unknown and the same request
	// may be sent again. Zero means DefaultMutationTimeout.
	MutationTimeout time.Duration
	// Ready are the checks of the parts this node cannot serve without,
	// by name: /readyz answers 503 while one of them fails.
	Ready map[string]Check
	// Degraded are the checks of the parts this node serves without, in a
	// degraded way (the read model, the projection's lag), by name:
	// /readyz names the failing ones and still answers 200. A name must not
	// be both a Ready and a Degraded check.
	Degraded map[string]Check
	// OpenAPI is the document served at /v1/openapi.json.
	OpenAPI []byte
	// Audit answers the audit routes (an owner's history, the state at an
	// instant); without it they answer 500.
	Audit AuditReader
	// Webhooks answers the webhook routes; without it they answer 501.
	Webhooks Webhooks
	// SecretScanning verifies the reports of GitHub's secret scanning
	// (POST /v1/secret-scanning/github); without it the route answers 501.
	SecretScanning SecretScanVerifier
	// RequireAuthScope makes a forward-auth check that names no scope (in
	// ?scope= or the ScopeHeader) a 400 scope_required, whatever the token,
	// so that a gateway whose configuration forgot the scope fails closed.
	// By default such a check passes any valid token.
	RequireAuthScope bool
	// TrustedProxies are the networks of the reverse proxies in front of
	// the server. The client address of a request from one of them is
	// taken from X-Forwarded-For (or else Forwarded): the right-most
	// address there that is not itself a trusted proxy. Any other
	// request's client address is its connection's peer, whatever headers
	// it sends. The client address is what usage records and what a
	// token's allowed networks are checked against. None: no proxy is
	// trusted.
	TrustedProxies []netip.Prefix
	// TracerProvider, if set, makes a server span of every request
	// (named by its route) in the trace of the caller's traceparent
	// header. Nil means no tracing: requests pass no tracing code.
	TracerProvider trace.TracerProvider
	// UI, if set, builds the web UI, served under UIPrefix (every method;
	// the UI answers its own routes) with the request id, log line and
	// metrics of every request; GET / then redirects to it.
	UI UIHandler
}

// Server is the HTTP API. Build it with New and serve Handler.
type Server struct {
	ledger          *ledger.Service
	validator       *validator.Validator
	metrics         *metrics.Metrics
	log             *slog.Logger
	maxBody         int64
	mutationTimeout time.Duration
	ready           map[string]Check
	degraded        map[string]Check
	openAPI         []byte
	audit           AuditReader
	webhooks        Webhooks
	secretScanning  SecretScanVerifier
	routes          []Route
	handler         http.Handler

	metricsHandler   http.Handler
	requireAuthScope bool
	trustedProxies   []netip.Prefix
	refusals         *refusalLog
	tracerProvider   trace.TracerProvider
	ui               UIHandler
}

// Route is one method and path pattern the server answers, in
// net/http.ServeMux syntax ("/v1/tokens/{id}").
type Route struct {
	Method, Path string
}

// New returns the server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil || cfg.Validator == nil {
		return nil, errors.New("api: Ledger and Validator are required")
	}
	for name := range cfg.Degraded {
		if _, ok := cfg.Ready[name]; ok {
			return nil, fmt.Errorf("api: check %q is both a Ready and a Degraded check", name)
		}
	}
	s := &Server{
		ledger:           cfg.Ledger,
		validator:        cfg.Validator,
		metrics:          cfg.Metrics,
		log:              cfg.Log,
		maxBody:          cfg.MaxBodyBytes,
		mutationTimeout:  cfg.MutationTimeout,
		ready:            cfg.Ready,
		degraded:         cfg.Degraded,
		openAPI:          cfg.OpenAPI,
		audit:            cfg.Audit,
		webhooks:         cfg.Webhooks,
		secretScanning:   cfg.SecretScanning,
		requireAuthScope: cfg.RequireAuthScope,
		trustedProxies:   slices.Clone(cfg.TrustedProxies),
		tracerProvider:   cfg.TracerProvider,
		ui:               cfg.UI,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.refusals = newRefusalLog(s.log, time.Now)
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.mutationTimeout <= 0 {
		s.mutationTimeout = DefaultMutationTimeout
	}
	s.metricsHandler = s.metrics.Handler()
	s.handler = s.buildHandler()
	return s, nil
}

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes returns every method and path the server answers, sorted.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// authPrefixPattern is the route of forward-auth in Envoy's form.
const authPrefixPattern = "/v1/auth/{path...}"

type handler func(w http.ResponseWriter, r *http.Request) error

type authedHandler func(w http.ResponseWriter, r *http.Request, c ledger.Caller) error

func (s *Server) buildHandler() http.Handler {
	type entry struct {
		method string
		h      http.HandlerFunc
	}
	byPath := map[string][]entry{}
	var paths []string
	add := func(method, path string, h http.HandlerFunc) {
		if _, ok := byPath[path]; !ok {
			paths = append(paths, path)
		}
		byPath[path] = append(byPath[path], entry{method, h})
		s.routes = append(s.routes, Route{Method: method, Path: path})
	}

	add(http.MethodPost, "/v1/tokens", s.mutation(s.authed(s.issue)))
	add(http.MethodGet, "/v1/tokens", s.authed(s.list))
	add(http.MethodGet, "/v1/tokens/{id}", s.authed(s.get))
	add(http.MethodPatch, "/v1/tokens/{id}", s.mutation(s.authed(s.update)))
	add(http.MethodDelete, "/v1/tokens/{id}", s.mutation(s.authed(s.revoke)))
	add(http.MethodPost, "/v1/tokens/{id}/rotate", s.mutation(s.authed(s.rotate)))
	add(http.MethodGet, "/v1/tokens/{id}/events", s.authed(s.events))
	add(http.MethodGet, "/v1/tokens/{id}/usage", s.authed(s.usageSeries))
	add(http.MethodPost, "/v1/owners/{owner}/revoke", s.mutation(s.authed(s.revokeOwner)))
	add(http.MethodGet, "/v1/owners/{owner}/events", s.authed(s.ownerEvents))
	add(http.MethodGet, "/v1/state", s.authed(s.stateAt))
	add(http.MethodPost, "/v1/revoke", s.mutation(s.plain(s.revokeSecret)))
	add(http.MethodPost, "/v1/introspect", s.mutation(s.authed(s.introspect)))
	add(http.MethodPost, "/v1/secret-scanning/github", s.mutation(s.plain(s.githubSecretScanning)))
	add(http.MethodPost, "/v1/webhooks", s.authed(s.createWebhook))
	add(http.MethodGet, "/v1/webhooks", s.authed(s.listWebhooks))
	add(http.MethodDelete, "/v1/webhooks/{id}", s.authed(s.removeWebhook))
	add(http.MethodGet, "/v1/webhooks/{id}/deliveries", s.authed(s.webhookDeliveries))
	add(http.MethodGet, "/v1/auth", s.forwardAuth)
	// Envoy's HTTP ext_authz appends the original path to the service's
	// path prefix and keeps the original method: /v1/auth/<anything>, any
	// method, is the same check.
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		add(m, authPrefixPattern, s.forwardAuthPrefixed)
	}
	add(http.MethodGet, "/v1/openapi.json", s.serveOpenAPI)
	add(http.MethodGet, "/metrics", s.serveMetrics)
	add(http.MethodGet, "/livez", livez)
	add(http.MethodGet, "/readyz", s.plain(s.readyz))

	// One mux entry per path that dispatches on the method itself, so a
	// wrong method is a JSON 405 with Allow rather than the mux's plain
	// text one.
	mux := http.NewServeMux()
	for _, path := range paths {
		entries := byPath[path]
		var allow []string
		for _, e := range entries {
			allow = append(allow, e.method)
			if e.method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		allowHeader := strings.Join(allow, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			method := r.Method
			if method == http.MethodHead {
				method = http.MethodGet
			}
			for _, e := range entries {
				if e.method == method {
					e.h(w, r)
					return
				}
			}
			w.Header().Set("Allow", allowHeader)
			writeJSONError(w, http.StatusMethodNotAllowed, sdk.CodeMethodNotAllowed, "method "+r.Method+" is not allowed here; allowed: "+allowHeader)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, sdk.CodeNotFound, "no such route")
	})
	if s.ui != nil {
		mux.Handle(UIPrefix, s.ui(s.authenticateSecret))
		mux.Handle("GET /{$}", http.RedirectHandler(UIPrefix, http.StatusSeeOther))
	}
	slices.SortFunc(s.routes, func(a, b Route) int {
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})

	// The Envoy form is answered before the mux, which would redirect a
	// client path such as /a//b to its clean form instead of checking it.
	prefixed := map[string]bool{http.MethodHead: true}
	for _, r := range s.routes {
		if r.Path == authPrefixPattern {
			prefixed[r.Method] = true
		}
	}
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		envoy := strings.HasPrefix(r.URL.Path, "/v1/auth/") && prefixed[r.Method]
		if len(r.Header.Values("Authorization")) > 1 {
			// Refused before any route runs, for every route alike; the
			// route is still named in the log line and the metrics.
			if envoy {
				r.Pattern = authPrefixPattern
			} else {
				_, r.Pattern = mux.Handler(r)
			}
			refuseManyAuthorizations(w)
			return
		}
		if envoy {
			r.Pattern = authPrefixPattern
			s.forwardAuthPrefixed(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})

	// The metrics sit outside the request id and the log line, so they
	// time everything; RecordRoute hands them the route matched.
	routed := metrics.RecordRoute(root)
	if s.tracerProvider != nil {
		routed = s.traced(routed)
	}
	return s.metrics.InstrumentHTTP(s.withRequest(routed))
}

// DefaultMutationTimeout is the default of Config.MutationTimeout: longer
// than a stream-leader election (about 5 s), which a mutation waits out.
const DefaultMutationTimeout = 10 * time.Second

// mutation bounds h by the mutation timeout. Everything below it (the
// ledger's conflict retries, the event store's append attempts and loads)
// honours the deadline, so the answer comes by then.
func (s *Server) mutation(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.mutationTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}

// plain adapts a handler that returns its error.
func (s *Server) plain(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// authed adapts a handler that needs an authenticated caller.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(w, r)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}
