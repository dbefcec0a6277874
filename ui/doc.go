// Package ui is tokenledger's web UI for token owners and admins, served by
// the API node under /ui/ (api.Config.UI): server-rendered HTML from
// html/template, a style sheet and one small script (the copy button and
// the removal of a shown secret from the browser's history), all embedded
// in the binary.
//
// Authorization is the API's. Signing in exchanges a pasted token, which
// the server resolves to its caller with the API's own Authenticator, for
// a token of kind session issued through the ledger for the same owner
// and scopes (its idle timeout and absolute cap are the policy's). The
// session's secret lives only in an HttpOnly, SameSite=Strict cookie
// (Secure when the request came over TLS); every request authenticates it
// again through the validator, which records the use and so slides the
// session. Signing out revokes the session token. Every page reads and
// changes the ledger through package ledger's use cases with the session's
// caller, so an admin sees every owner and any other caller its own
// owner's tokens only, another owner's token being "not found".
//
// Security: every response carries a Content-Security-Policy without
// inline script or style and with frame-ancestors 'none'; every state
// change is a POST that must pass net/http's cross-origin protection
// (Sec-Fetch-Site, Origin) and carry the session's CSRF token, a keyed
// hash of the session secret that only pages rendered for that session
// hold. Secrets never appear in URLs or logs: a newly issued or rotated
// secret is shown once, in the answer to the POST that made it, with
// Cache-Control: no-store. Bad input is answered with the API's status
// and message (api.Classify), as an HTML page.
package ui
