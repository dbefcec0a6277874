package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/validator"
)

// apiError is an error with the status and code it is answered with.
type apiError struct {
	status  int
	code    string
	message string
	// wwwAuthenticate, if set, is sent as the WWW-Authenticate header.
	wwwAuthenticate string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: sdk.CodeInvalidRequest, message: format}
}

// retryAfterSeconds is the Retry-After of a 503.
const retryAfterSeconds = "1"

// classify maps an error of the ledger, the domain or the validator to the
// status and code it is answered with. Anything unrecognized is a 500: bad
// input is always recognized before it gets that far.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: sdk.CodeNotFound, message: "no such token"}
	case errors.Is(err, ledger.ErrLifetimeExceedsCaller):
		return &apiError{status: http.StatusForbidden, code: sdk.CodeLifetimeExceedsCaller, message: msg}
	case errors.Is(err, ledger.ErrForbidden):
		return &apiError{status: http.StatusForbidden, code: sdk.CodeForbidden, message: msg}
	case errors.Is(err, domain.ErrOwnerBlocked):
		return &apiError{status: http.StatusForbidden, code: sdk.CodeOwnerBlocked, message: msg}
	case errors.Is(err, domain.ErrInvalidArgument):
		return &apiError{status: http.StatusBadRequest, code: sdk.CodeInvalidRequest, message: msg}
	case errors.Is(err, domain.ErrTokenRevoked), errors.Is(err, domain.ErrOwnerRevoked),
		errors.Is(err, domain.ErrTokenExpired), errors.Is(err, ledger.ErrConflict),
		errors.Is(err, eventstore.ErrConflict):
		return &apiError{status: http.StatusConflict, code: sdk.CodeConflict, message: msg}
	case errors.Is(err, domain.ErrPolicyViolation):
		// The code says "policy violation" already: the message names the
		// rule alone, not the call's context nor the sentinel's text.
		var pv *domain.PolicyViolation
		if errors.As(err, &pv) {
			msg = pv.Rule
		}
		return &apiError{status: http.StatusBadRequest, code: sdk.CodePolicyViolation, message: msg}
	case errors.Is(err, ledger.ErrUnavailable), errors.Is(err, validator.ErrStale),
		errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, code: sdk.CodeUnavailable, message: "the ledger is unavailable, try again"}
	default:
		return &apiError{status: http.StatusInternalServerError, code: sdk.CodeInternal, message: "internal error"}
	}
}

// writeError answers err. 5xx answers are logged with the error's detail,
// which the client does not see.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	if ae.status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
	}
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	if ae.wwwAuthenticate != "" {
		w.Header().Set("WWW-Authenticate", ae.wwwAuthenticate)
	}
	writeJSONError(w, ae.status, ae.code, ae.message)
}

func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, sdk.ErrorBody{Error: sdk.ErrorDetail{Code: code, Message: message}})
}
