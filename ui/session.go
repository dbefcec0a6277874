package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
)

// CookieName is the cookie that holds the session token's secret: HttpOnly,
// SameSite=Strict, Secure over TLS, for the UI's paths only.
const CookieName = "tokenledger_session"

// CSRFField is the form field that carries the session's CSRF token in
// every form that changes state.
const CSRFField = "csrf"

// SessionName is the name of the session tokens the UI issues.
const SessionName = "web UI session"

// SignOutReason is recorded when signing out revokes the session token.
const SignOutReason = "signed out of the web UI"

// maxFormBytes bounds the body of a form post.
const maxFormBytes = 64 << 10

// visit is a signed-in request: the session's caller and the CSRF token
// of its forms.
type visit struct {
	Caller ledger.Caller
	CSRF   string
}

// Owner, IsAdmin and SessionID are what the header of every page shows.
func (v *visit) Owner() string     { return string(v.Caller.Owner) }
func (v *visit) IsAdmin() bool     { return v.Caller.IsAdmin() }
func (v *visit) SessionID() string { return v.Caller.TokenID.String() }

type visitHandler func(w http.ResponseWriter, r *http.Request, v *visit) error

// session runs h for a signed-in request: the session cookie's secret is
// authenticated like an API bearer token (which records its use, so the
// session slides), and a POST must carry the session's CSRF token. A
// request without a valid session is sent to the sign-in page.
func (s *server) session(h visitHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(CookieName)
		if err != nil || c.Value == "" {
			http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
			return
		}
		caller, err := s.auth(r, c.Value)
		if err != nil {
			if api.Classify(err).Status == http.StatusUnauthorized {
				clearSession(w, r)
				http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
				return
			}
			s.fail(w, r, nil, err)
			return
		}
		v := &visit{Caller: caller, CSRF: csrfToken(c.Value)}
		if r.Method == http.MethodPost {
			if err := parseForm(w, r); err != nil {
				s.fail(w, r, v, err)
				return
			}
			got := r.PostForm.Get(CSRFField)
			if subtle.ConstantTimeCompare([]byte(got), []byte(v.CSRF)) != 1 {
				s.fail(w, r, v, refuse(http.StatusForbidden, sdk.CodeForbidden,
					"the form's CSRF token is missing or not this session's: reload the page and try again"))
				return
			}
		}
		if err := h(w, r, v); err != nil {
			s.fail(w, r, v, err)
		}
	}
}

// csrfToken is the CSRF token of the session whose secret is secret: a
// keyed hash that a page of another site cannot compute, since the secret
// never leaves the HttpOnly cookie, and that every node derives alike.
func csrfToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("tokenledger web UI CSRF token"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// parseForm reads a url-encoded form body of at most maxFormBytes.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return refuse(http.StatusUnsupportedMediaType, sdk.CodeInvalidRequest, "a form must be sent as application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return refuse(http.StatusRequestEntityTooLarge, sdk.CodeInvalidRequest, "the form is too large")
		}
		return refuse(http.StatusBadRequest, sdk.CodeInvalidRequest, "the form cannot be read")
	}
	return nil
}

// overTLS reports whether the browser reached the UI over TLS, directly or
// through a proxy that says so. A client that lies gets a Secure cookie it
// cannot send back over plain HTTP: it only locks itself out.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setSession(w http.ResponseWriter, r *http.Request, secret string) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: secret, Path: api.UIPrefix,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: api.UIPrefix, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
}

// signInPage shows the sign-in form; a signed-in browser goes to its
// tokens.
func (s *server) signInPage(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		if _, err := s.auth(r, c.Value); err == nil {
			http.Redirect(w, r, "/ui/tokens", http.StatusSeeOther)
			return
		}
	}
	s.render(w, r, http.StatusOK, "signin", page{Title: "Sign in"})
}

// signIn exchanges a pasted token for a session token of the same owner
// and scopes, issued through the ledger with the policy's idle timeout and
// absolute cap, whose secret only the cookie keeps.
func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.fail(w, r, nil, err)
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	if secret == "" {
		s.render(w, r, http.StatusBadRequest, "signin", page{Title: "Sign in", Error: "Paste a token to sign in."})
		return
	}
	caller, err := s.auth(r, secret)
	if err != nil {
		a := answer(err)
		if a.Status == http.StatusUnauthorized {
			s.render(w, r, a.Status, "signin", page{Title: "Sign in", Error: "That token cannot sign in: " + a.Message + "."})
			return
		}
		s.fail(w, r, nil, err)
		return
	}
	issued, err := s.ledger.Issue(r.Context(), caller, domain.IssueRequest{
		Owner:  caller.Owner,
		Name:   SessionName,
		Scopes: caller.Scopes,
		Kind:   domain.KindSession,
	}, api.RequestID(r.Context()))
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	setSession(w, r, issued.Secret.Reveal())
	http.Redirect(w, r, "/ui/tokens", http.StatusSeeOther)
}

// signOut revokes the session token and forgets the cookie.
func (s *server) signOut(w http.ResponseWriter, r *http.Request, v *visit) error {
	if err := s.ledger.Revoke(r.Context(), v.Caller, v.Caller.TokenID, SignOutReason, api.RequestID(r.Context())); err != nil {
		return err
	}
	clearSession(w, r)
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
	return nil
}

func (s *server) home(w http.ResponseWriter, r *http.Request, v *visit) error {
	http.Redirect(w, r, "/ui/tokens", http.StatusSeeOther)
	return nil
}
