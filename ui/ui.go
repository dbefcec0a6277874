package ui

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every response of the UI: scripts,
// styles and images from the UI's own origin only (no inline script or
// style), forms posting to it only, and no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config configures the UI.
type Config struct {
	// Ledger runs every use case the pages show or trigger.
	Ledger *ledger.Service
	// Audit answers the audit pages (an owner's history, the state at an
	// instant); without it they answer 500.
	Audit api.AuditReader
	// Clock tells the time relative times are counted from; nil means the
	// system clock. It must be the ledger's.
	Clock domain.Clock
	// Log receives the cause of every 5xx; never a secret.
	Log *slog.Logger
	// MutationTimeout bounds every request that may append (as
	// api.Config.MutationTimeout); zero means api.DefaultMutationTimeout.
	MutationTimeout time.Duration
}

// UI is the web UI. Build it with New and give its Handler to the API
// server (api.Config.UI).
type UI struct {
	ledger          *ledger.Service
	audit           api.AuditReader
	clock           domain.Clock
	log             *slog.Logger
	mutationTimeout time.Duration
	pages           *pages
}

// New returns the UI for cfg.
func New(cfg Config) (*UI, error) {
	if cfg.Ledger == nil {
		return nil, errors.New("ui: Ledger is required")
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	u := &UI{
		ledger:          cfg.Ledger,
		audit:           cfg.Audit,
		clock:           cfg.Clock,
		log:             cfg.Log,
		mutationTimeout: cfg.MutationTimeout,
		pages:           p,
	}
	if u.clock == nil {
		u.clock = domain.SystemClock{}
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.mutationTimeout <= 0 {
		u.mutationTimeout = api.DefaultMutationTimeout
	}
	return u, nil
}

// Handler returns the UI's handler, which authenticates sessions with
// auth; it serves paths under api.UIPrefix.
func (u *UI) Handler(auth api.Authenticator) http.Handler {
	s := &server{UI: u, auth: auth, cop: http.NewCrossOriginProtection()}
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /ui/static/{file}", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/{$}", s.session(s.home))
	mux.HandleFunc("GET /ui/signin", s.signInPage)
	mux.HandleFunc("POST /ui/signin", s.mutation(s.signIn))
	mux.HandleFunc("POST /ui/signout", s.mutation(s.session(s.signOut)))
	mux.HandleFunc("GET /ui/tokens", s.session(s.list))
	mux.HandleFunc("GET /ui/tokens/new", s.session(s.issueForm))
	mux.HandleFunc("POST /ui/tokens", s.mutation(s.session(s.issue)))
	mux.HandleFunc("GET /ui/tokens/{id}", s.session(s.show))
	mux.HandleFunc("POST /ui/tokens/{id}/expiry", s.mutation(s.session(s.setExpiry)))
	mux.HandleFunc("POST /ui/tokens/{id}/rotate", s.mutation(s.session(s.rotate)))
	mux.HandleFunc("POST /ui/tokens/{id}/revoke", s.mutation(s.session(s.revoke)))
	mux.HandleFunc("GET /ui/owners", s.session(s.ownerPick))
	mux.HandleFunc("GET /ui/owners/{owner}", s.session(s.ownerHistory))
	mux.HandleFunc("POST /ui/owners/{owner}/revoke", s.mutation(s.session(s.revokeOwner)))
	mux.HandleFunc("GET /ui/state", s.session(s.stateAt))
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, nil, refuse(http.StatusNotFound, sdk.CodeNotFound, "no such page"))
	})
	return securityHeaders(mux)
}

// server is the UI bound to the API's Authenticator.
type server struct {
	*UI
	auth api.Authenticator
	cop  *http.CrossOriginProtection
}

// securityHeaders sets the headers every response of the UI carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on form posts, which the origin check refuses.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// mutation guards a state change: it must not come from another site
// (Sec-Fetch-Site, Origin), and it is bounded by the mutation timeout.
func (s *server) mutation(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.cop.Check(r); err != nil {
			s.fail(w, r, nil, refuse(http.StatusForbidden, sdk.CodeForbidden,
				"cross-site request refused: a change must come from a page of this site"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.mutationTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}
