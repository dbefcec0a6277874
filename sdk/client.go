package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenledger/tokenledger/version"
)

// MaxResponseBytes is the most the client reads of an answer's body; a
// longer answer fails with an error rather than being read into memory.
const MaxResponseBytes = 4 << 20

// maxErrorBodyBytes is the most read of an error answer's body: the
// server's error documents are tiny, anything longer came from elsewhere.
const maxErrorBodyBytes = 64 << 10

// maxProxyMessage bounds how much of a non-JSON error body (a proxy's
// plain-text page) becomes Error.Message.
const maxProxyMessage = 200

// DefaultUserAgent is the User-Agent header the client sends unless
// WithUserAgent sets another: "tokenledger-go/" and the version of the
// tokenledger module the program was built with (package version), so
// that a server's operator can tell which clients still run an old one.
var DefaultUserAgent = "tokenledger-go/" + version.Get().Version

// Client calls tokenledger's HTTP API. Every method maps onto one route (or,
// for ListAll, a sequence of calls of one route), sends the Client's token
// as its credentials (except RevokeSecret and Auth, see there) and returns
// the route's answer decoded into the sdk types.
//
// Errors: an answer with a status other than 2xx is returned as an *Error,
// wrapped with the operation's context; match it with errors.Is against the
// Err* sentinels (ErrNotFound, ErrConflict, ...) or get at its fields with
// errors.As. Transport failures are returned as net/http reports them, and
// context cancellation as the context's error, wrapped likewise. No error
// and no Error.Message ever holds the Client's token or a secret passed to
// a method, and the Client never logs.
//
// A Client is safe for concurrent use by several goroutines.
type Client struct {
	base      *url.URL
	token     string
	hc        *http.Client
	userAgent string
}

// Option configures a Client made by New.
type Option func(*Client)

// WithToken sets the secret the Client presents as its credentials
// (Authorization: Bearer). Without it requests go unauthenticated, which
// only RevokeSecret and Auth can do without a 401.
func WithToken(secret string) Option {
	return func(c *Client) { c.token = secret }
}

// WithHTTPClient makes the Client send its requests with hc, for its
// timeouts, transport and redirect policy. The default is a client that
// follows no redirect, so that a secret in a request body is never re-sent
// to wherever a redirect points; a redirect is then returned as an *Error
// with its 3xx status.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithUserAgent sets the User-Agent header of every request; the default is
// DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// noRedirects is the default HTTP client: see WithHTTPClient.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// New returns a Client of the API at baseURL, an absolute http or https URL
// such as "http://127.0.0.1:8080" or "https://example.com/ledger" (a path
// prefixes every route). It fails if baseURL is not such a URL, carries a
// query or fragment, or if the token contains characters a header cannot
// carry.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("server URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: want an http:// or https:// URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q: no host", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("server URL %q: a query or fragment is not allowed", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	c := &Client{base: u, hc: noRedirects, userAgent: DefaultUserAgent}
	for _, opt := range opts {
		opt(c)
	}
	if c.hc == nil {
		c.hc = noRedirects
	}
	if !validHeaderValue(c.token) {
		return nil, errors.New("token: contains characters an Authorization header cannot carry")
	}
	return c, nil
}

// Issue issues a token: POST /v1/tokens. The returned IssuedToken holds the
// secret, which the server shows this once.
func (c *Client) Issue(ctx context.Context, req IssueRequest) (IssuedToken, error) {
	var out IssuedToken
	err := c.doJSON(ctx, call{method: http.MethodPost, path: "/v1/tokens", body: req, bearer: c.token}, &out)
	if err != nil {
		return IssuedToken{}, fmt.Errorf("issue token: %w", err)
	}
	return out, nil
}

// List returns one page of tokens: GET /v1/tokens with opts as query
// parameters (durations as Go duration strings; zero fields are left out).
// Page on by passing the page's NextCursor as opts.Cursor, or use ListAll.
func (c *Client) List(ctx context.Context, opts ListOptions) (TokenPage, error) {
	var out TokenPage
	err := c.doJSON(ctx, call{method: http.MethodGet, path: "/v1/tokens", query: listQuery(opts), bearer: c.token}, &out)
	if err != nil {
		return TokenPage{}, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func listQuery(o ListOptions) url.Values {
	q := url.Values{}
	if o.Owner != "" {
		q.Set("owner", o.Owner)
	}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.UnusedFor != 0 {
		q.Set("unused_for", o.UnusedFor.String())
	}
	if o.ExpiringWithin != 0 {
		q.Set("expiring_within", o.ExpiringWithin.String())
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// ListAll returns every token List finds for opts, following next_cursor
// from opts.Cursor on until the last page; opts.Limit is the page size. The
// sequence fetches a page only when the previous one is consumed and stops
// when the loop body breaks. An error ends it: it is yielded once, with a
// zero Token. A server that answers a cursor with the same cursor again is
// reported as an error rather than followed forever.
func (c *Client) ListAll(ctx context.Context, opts ListOptions) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		for {
			page, err := c.List(ctx, opts)
			if err != nil {
				yield(Token{}, err)
				return
			}
			for _, t := range page.Items {
				if !yield(t, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			if page.NextCursor == opts.Cursor {
				yield(Token{}, fmt.Errorf("list tokens: the server answered cursor %q with itself", opts.Cursor))
				return
			}
			opts.Cursor = page.NextCursor
		}
	}
}

// Get returns a token's metadata: GET /v1/tokens/{id}.
func (c *Client) Get(ctx context.Context, id string) (Token, error) {
	p, err := tokenPath(id, "")
	if err != nil {
		return Token{}, fmt.Errorf("get token: %w", err)
	}
	var out Token
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: p, bearer: c.token}, &out); err != nil {
		return Token{}, fmt.Errorf("get token %s: %w", id, err)
	}
	return out, nil
}

// SetExpiry sets a token's expiry: PATCH /v1/tokens/{id} with
// {"expires_at": at}; a nil at asks for no expiry (the field is then sent as
// null). It returns the token as changed.
func (c *Client) SetExpiry(ctx context.Context, id string, at *time.Time) (Token, error) {
	p, err := tokenPath(id, "")
	if err != nil {
		return Token{}, fmt.Errorf("set expiry: %w", err)
	}
	var out Token
	err = c.doJSON(ctx, call{method: http.MethodPatch, path: p, body: SetExpiryRequest{ExpiresAt: at}, bearer: c.token}, &out)
	if err != nil {
		return Token{}, fmt.Errorf("set expiry of token %s: %w", id, err)
	}
	return out, nil
}

// SetAllowedCIDRs limits a token to the networks cidrs (CIDR prefixes or
// single addresses; none: any network): PATCH /v1/tokens/{id}. Without
// ledger:admin a caller may only narrow them.
func (c *Client) SetAllowedCIDRs(ctx context.Context, id string, cidrs []string) (Token, error) {
	p, err := tokenPath(id, "")
	if err != nil {
		return Token{}, fmt.Errorf("set allowed networks: %w", err)
	}
	if cidrs == nil {
		cidrs = []string{} // empty, not null: any network
	}
	var out Token
	err = c.doJSON(ctx, call{method: http.MethodPatch, path: p, body: SetAllowedCIDRsRequest{AllowedCIDRs: cidrs}, bearer: c.token}, &out)
	if err != nil {
		return Token{}, fmt.Errorf("set allowed networks of token %s: %w", id, err)
	}
	return out, nil
}

// Usage returns a token's uses per hour or day: GET
// /v1/tokens/{id}/usage.
func (c *Client) Usage(ctx context.Context, id string, opts UsageOptions) (UsageSeries, error) {
	p, err := tokenPath(id, "/usage")
	if err != nil {
		return UsageSeries{}, fmt.Errorf("token usage: %w", err)
	}
	q := url.Values{}
	if opts.Granularity != "" {
		q.Set("granularity", opts.Granularity)
	}
	if !opts.From.IsZero() {
		q.Set("from", opts.From.UTC().Format(time.RFC3339))
	}
	if !opts.To.IsZero() {
		q.Set("to", opts.To.UTC().Format(time.RFC3339))
	}
	var out UsageSeries
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: p, query: q, bearer: c.token}, &out); err != nil {
		return UsageSeries{}, fmt.Errorf("usage of token %s: %w", id, err)
	}
	return out, nil
}

// Revoke revokes a token: DELETE /v1/tokens/{id}, with the body
// {"reason": reason} unless reason is empty (then no body). Revoking a
// revoked token succeeds.
func (c *Client) Revoke(ctx context.Context, id, reason string) error {
	p, err := tokenPath(id, "")
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	cl := call{method: http.MethodDelete, path: p, bearer: c.token}
	if reason != "" {
		cl.body = RevokeRequest{Reason: reason}
	}
	if err := c.doJSON(ctx, cl, nil); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// Rotate replaces a token by a new one with the same owner, name and
// scopes: POST /v1/tokens/{id}/rotate, with the body {"grace": grace}
// unless grace is zero (then no body: the old token expires at once). The
// answer holds the new secret, shown this once.
func (c *Client) Rotate(ctx context.Context, id string, grace time.Duration) (RotatedToken, error) {
	p, err := tokenPath(id, "/rotate")
	if err != nil {
		return RotatedToken{}, fmt.Errorf("rotate token: %w", err)
	}
	cl := call{method: http.MethodPost, path: p, bearer: c.token}
	if grace != 0 {
		g := Duration(grace)
		cl.body = RotateRequest{Grace: &g}
	}
	var out RotatedToken
	if err := c.doJSON(ctx, cl, &out); err != nil {
		return RotatedToken{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	return out, nil
}

// Events returns a token's stored history, oldest first: GET
// /v1/tokens/{id}/events.
func (c *Client) Events(ctx context.Context, id string) (EventList, error) {
	p, err := tokenPath(id, "/events")
	if err != nil {
		return EventList{}, fmt.Errorf("token events: %w", err)
	}
	var out EventList
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: p, bearer: c.token}, &out); err != nil {
		return EventList{}, fmt.Errorf("events of token %s: %w", id, err)
	}
	return out, nil
}

// RevokeOwner revokes every token of owner issued up to now: POST
// /v1/owners/{owner}/revoke with req as its body (always sent, {} when req
// is zero). The owner is one path segment, escaped: it may hold '/', '@',
// spaces or anything else, except being empty, "." or "..".
func (c *Client) RevokeOwner(ctx context.Context, owner string, req OwnerRevokeRequest) (OwnerRevocation, error) {
	seg, err := segment("owner", owner)
	if err != nil {
		return OwnerRevocation{}, fmt.Errorf("revoke owner: %w", err)
	}
	var out OwnerRevocation
	err = c.doJSON(ctx, call{method: http.MethodPost, path: "/v1/owners/" + seg + "/revoke", body: req, bearer: c.token}, &out)
	if err != nil {
		return OwnerRevocation{}, fmt.Errorf("revoke owner %q: %w", owner, err)
	}
	return out, nil
}

// RevokeSecret revokes the token a secret belongs to (RFC 7009): POST
// /v1/revoke with the form body token=secret. It sends no credentials, not
// even the Client's token: possession of the secret is the proof. The
// server answers success for unknown and malformed secrets too, so a nil
// error says the request was recorded, not that the secret was a token. A
// 503 (ErrUnavailable) carries the server's Retry-After in Error.RetryAfter.
func (c *Client) RevokeSecret(ctx context.Context, secret string) error {
	if secret == "" {
		return errors.New("revoke secret: empty secret")
	}
	if err := c.doForm(ctx, "/v1/revoke", secret, "", nil); err != nil {
		return fmt.Errorf("revoke secret: %w", err)
	}
	return nil
}

// Introspect reports whether a secret is an active token, and whose (RFC
// 7662): POST /v1/introspect with the form body token=secret. The Client's
// token needs the scope ledger:introspect or ledger:admin. An unknown,
// expired, revoked or malformed secret is a nil error with Active false.
func (c *Client) Introspect(ctx context.Context, secret string) (Introspection, error) {
	if secret == "" {
		return Introspection{}, errors.New("introspect: empty secret")
	}
	var out Introspection
	if err := c.doForm(ctx, "/v1/introspect", secret, c.token, &out); err != nil {
		return Introspection{}, fmt.Errorf("introspect: %w", err)
	}
	return out, nil
}

// AuthResult is what GET /v1/auth tells of an accepted token: its id, its
// owner and its scopes.
type AuthResult struct {
	TokenID string
	Owner   string
	Scopes  []string
}

// Auth asks whether secret is a valid token, and, unless scope is empty,
// whether it has that scope: GET /v1/auth[?scope=scope] presenting secret
// (not the Client's token) as the Authorization header, as a forward-auth
// proxy does. A rejected secret is an *Error matching ErrInvalidToken (401)
// or ErrInsufficientScope (403).
func (c *Client) Auth(ctx context.Context, secret, scope string) (AuthResult, error) {
	if secret == "" {
		return AuthResult{}, errors.New("auth: empty secret")
	}
	if !validHeaderValue(secret) {
		return AuthResult{}, errors.New("auth: the secret contains characters an Authorization header cannot carry")
	}
	q := url.Values{}
	if scope != "" {
		q.Set("scope", scope)
	}
	resp, err := c.send(ctx, call{method: http.MethodGet, path: "/v1/auth", query: q, bearer: secret})
	if err != nil {
		return AuthResult{}, fmt.Errorf("auth: %w", err)
	}
	h := resp.header
	return AuthResult{
		TokenID: h.Get("X-Token-Id"),
		Owner:   h.Get("X-Token-Owner"),
		Scopes:  strings.Fields(h.Get("X-Token-Scopes")),
	}, nil
}

// call is one request: its route, its JSON or form body (neither: none)
// and the secret it presents as Authorization: Bearer ("" for none).
type call struct {
	method string
	// path is the route below the base URL, already escaped.
	path   string
	query  url.Values
	body   any
	form   url.Values
	bearer string
	// secret is a secret the request carries besides bearer; it is
	// redacted from error messages like bearer.
	secret string
}

// answer is a 2xx answer, its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (c *Client) doJSON(ctx context.Context, cl call, out any) error {
	resp, err := c.send(ctx, cl)
	if err != nil {
		return err
	}
	return decodeAnswer(resp, out)
}

func (c *Client) doForm(ctx context.Context, path, secret, bearer string, out any) error {
	resp, err := c.send(ctx, call{method: http.MethodPost, path: path, form: url.Values{"token": {secret}}, bearer: bearer, secret: secret})
	if err != nil {
		return err
	}
	return decodeAnswer(resp, out)
}

// decodeAnswer decodes a 2xx answer's JSON body into out; a nil out
// ignores the body.
func decodeAnswer(a answer, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return fmt.Errorf("decode the answer (%s): %w", statusNote(a.status, a.header), err)
	}
	return nil
}

// send makes the request and reads the answer: a 2xx answer is returned
// with its body, any other status becomes an *Error.
func (c *Client) send(ctx context.Context, cl call) (answer, error) {
	resp, err := c.open(ctx, cl)
	if err != nil {
		return answer{}, err
	}
	defer closeBody(resp)
	limit := int64(MaxResponseBytes)
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return answer{}, fmt.Errorf("read the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if int64(len(b)) > limit {
		return answer{}, fmt.Errorf("read the answer (%s): the body exceeds %d bytes", statusNote(resp.StatusCode, resp.Header), limit)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// open makes the request and returns a 2xx answer with its body unread
// (close it with closeBody); any other status becomes an *Error.
func (c *Client) open(ctx context.Context, cl call) (*http.Response, error) {
	u := *c.base
	u.RawPath = u.EscapedPath() + cl.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("build URL: %w", err)
	}
	u.Path = p
	if len(cl.query) > 0 {
		u.RawQuery = cl.query.Encode()
	}
	var body io.Reader
	contentType := ""
	switch {
	case cl.form != nil:
		body = strings.NewReader(cl.form.Encode())
		contentType = "application/x-www-form-urlencoded"
	case cl.body != nil:
		b, err := json.Marshal(cl.body)
		if err != nil {
			return nil, fmt.Errorf("encode the request: %w", err)
		}
		body = bytes.NewReader(b)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cl.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+cl.bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer closeBody(resp)
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return nil, newError(resp, b, c.token, cl.bearer, cl.secret)
}

// closeBody drains what is left of an answer's body (bounded), so the
// connection can be reused, and closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	_ = resp.Body.Close()
}

// statusNote is "HTTP 200, request <X-Request-Id>" for an error's context.
func statusNote(status int, h http.Header) string {
	if id := oneLine(h.Get("X-Request-Id"), maxProxyMessage); id != "" {
		return fmt.Sprintf("HTTP %d, request %s", status, id)
	}
	return fmt.Sprintf("HTTP %d", status)
}

// tokenPath is /v1/tokens/{id}, then suffix.
func tokenPath(id, suffix string) (string, error) {
	// A secret passed where an id belongs would end up in the URL, the
	// server's access log and this error's context: refuse it unsent.
	if strings.HasPrefix(id, secretPrefix) {
		return "", errors.New("the token id given is a secret (tlk_...): pass the token's id, not its secret")
	}
	seg, err := segment("token id", id)
	if err != nil {
		return "", err
	}
	return "/v1/tokens/" + seg + suffix, nil
}

// segment escapes s as one path segment. Empty, "." and ".." are refused:
// proxies and routers collapse them.
func segment(what, s string) (string, error) {
	switch s {
	case "":
		return "", fmt.Errorf("empty %s", what)
	case ".", "..":
		return "", fmt.Errorf("%s %q cannot be a path segment", what, s)
	}
	return url.PathEscape(s), nil
}

// validHeaderValue reports whether s can be sent in a header: no control
// characters (a line break would end the header).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// Error is an API answer with a status other than 2xx. Code is the error
// document's code (one of the Code* constants) and Message its message;
// for an answer that is not an error document (a proxy's page, an empty
// body) Code is empty and Message summarises the status and body. RequestID
// is the answer's X-Request-Id, to quote when asking the server's operator.
// RetryAfter is the answer's Retry-After (0 when absent), set on 503s the
// server expects to end.
//
// Match an Error with errors.Is against the Err* sentinels: an Error is
// one if its Code is the sentinel's, and an Error without a code whose
// status is 502, 503 or 504 (a proxy's "try again later") is also
// ErrUnavailable. Message never holds a secret the request carried, nor
// anything shaped like a tokenledger secret.
type Error struct {
	Status     int
	Code       string
	Message    string
	RequestID  string
	RetryAfter time.Duration
}

// Error renders the code, message, status and request id on one line.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	var details []string
	if e.Code != "" {
		details = append(details, fmt.Sprintf("HTTP %d", e.Status))
	}
	if e.RequestID != "" {
		details = append(details, "request "+e.RequestID)
	}
	if len(details) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(details, ", "))
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's code (see Error).
func (e *Error) Is(target error) bool {
	s, ok := target.(sentinel)
	if !ok {
		return false
	}
	if e.Code != "" {
		return string(s) == e.Code
	}
	switch e.Status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return s == ErrUnavailable
	}
	return false
}

// sentinel is the type of the Err* values: a code, compared by
// (*Error).Is. It is a string so that the sentinels are constants in
// effect: nothing can change what they match.
type sentinel string

func (s sentinel) Error() string { return "tokenledger: " + string(s) }

// Sentinels of the error codes, to match an *Error with errors.Is:
// errors.Is(err, sdk.ErrNotFound) holds for an error (however wrapped)
// whose Error has the code not_found. Their meaning is the Code constant's.
var (
	ErrInvalidRequest        error = sentinel(CodeInvalidRequest)
	ErrPolicyViolation       error = sentinel(CodePolicyViolation)
	ErrUnauthorized          error = sentinel(CodeUnauthorized)
	ErrInvalidToken          error = sentinel(CodeInvalidToken)
	ErrForbidden             error = sentinel(CodeForbidden)
	ErrInsufficientScope     error = sentinel(CodeInsufficientScope)
	ErrIPNotAllowed          error = sentinel(CodeIPNotAllowed)
	ErrOwnerBlocked          error = sentinel(CodeOwnerBlocked)
	ErrLifetimeExceedsCaller error = sentinel(CodeLifetimeExceedsCaller)
	ErrNotFound              error = sentinel(CodeNotFound)
	ErrMethodNotAllowed      error = sentinel(CodeMethodNotAllowed)
	ErrConflict              error = sentinel(CodeConflict)
	ErrPayloadTooLarge       error = sentinel(CodePayloadTooLarge)
	ErrUnsupportedMediaType  error = sentinel(CodeUnsupportedMediaType)
	ErrUnavailable           error = sentinel(CodeUnavailable)
	ErrInternal              error = sentinel(CodeInternal)
)

// newError makes the *Error of a non-2xx answer whose body (at most
// maxErrorBodyBytes+1 bytes of it) is b. secrets are redacted from the
// message.
func newError(resp *http.Response, b []byte, secrets ...string) *Error {
	e := &Error{
		Status:     resp.StatusCode,
		RequestID:  oneLine(resp.Header.Get("X-Request-Id"), maxProxyMessage),
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	var doc ErrorBody
	if len(b) <= maxErrorBodyBytes && json.Unmarshal(b, &doc) == nil && doc.Error.Code != "" {
		e.Code = redact(oneLine(doc.Error.Code, maxProxyMessage), secrets)
		e.Message = oneLine(doc.Error.Message, 4*maxProxyMessage)
	} else {
		e.Message = proxyMessage(resp, b)
	}
	e.Message = redact(e.Message, secrets)
	e.RequestID = redact(e.RequestID, secrets)
	return e
}

// proxyMessage summarises an answer that is not an error document: its
// status text, and the start of a plain-text body.
func proxyMessage(resp *http.Response, b []byte) string {
	msg := http.StatusText(resp.StatusCode)
	if msg == "" {
		msg = "unexpected status"
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/plain" && utf8.Valid(b) {
		if text := oneLine(string(b), maxProxyMessage); text != "" && text != msg {
			msg += ": " + text
		}
	}
	return msg
}

// oneLine collapses runs of white space and control characters of s into
// single spaces and cuts the result to at most limit bytes, at a character
// boundary, marking a cut with "…".
func oneLine(s string, limit int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

const secretPrefix = "tlk_"

// secretShape matches anything that looks like a tokenledger secret, whole
// or cut: the prefix and at least four more characters of its alphabet.
var secretShape = regexp.MustCompile(`tlk_[0-9A-Za-z_]{4,}`)

// redact removes from s every secret given and anything shaped like a
// secret, keeping the prefix and the first characters of the (non-secret)
// token id, as the server's own redaction does.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return secretShape.ReplaceAllStringFunc(s, func(m string) string {
		return m[:len(secretPrefix)+4] + "…[redacted]"
	})
}

// retryAfter reads a Retry-After header: seconds or an HTTP date. It is 0
// when absent, malformed or past.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > math.MaxInt64/int64(time.Second) {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
