package api

import (
	"context"
	"net/http"

	"github.com/tokenledger/tokenledger/ledger"
)

// UIPrefix is the path under which the server serves Config.UI.
const UIPrefix = "/ui/"

// Authenticator resolves the caller whose token secret a request presents,
// exactly as every management route of the API does: through the
// validator, which also records the use (so a session token slides). Its
// errors are answered by Classify: an invalid token is a 401.
type Authenticator func(r *http.Request, secret string) (ledger.Caller, error)

// UIHandler builds the web UI's handler from the server's caller
// resolution; see Config.UI.
type UIHandler func(auth Authenticator) http.Handler

// ErrorAnswer is how the API answers an error: its status, its code (one
// of sdk's Code constants) and a message safe to show to the client.
type ErrorAnswer struct {
	Status  int
	Code    string
	Message string
}

// Classify returns how the API answers err, an error of the ledger, the
// domain, the validator or an Authenticator, so that another front end (the
// web UI) answers the same input the same way.
func Classify(err error) ErrorAnswer {
	ae := classify(err)
	return ErrorAnswer{Status: ae.status, Code: ae.code, Message: ae.message}
}

// RequestID returns the id the server gave the request whose context ctx
// is ("" outside the server): the correlation id of the events it causes.
func RequestID(ctx context.Context) string { return requestID(ctx) }
