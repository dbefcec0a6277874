package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/secretscan"
)

// SecretScanVerifier checks the signature of a secret scanning partner
// report (*secretscan.Verifier implements it).
type SecretScanVerifier interface {
	Verify(ctx context.Context, keyID, signature string, body []byte) error
}

// MaxSecretScanningReports bounds the findings of one report.
const MaxSecretScanningReports = 1000

// scannerGitHub names GitHub's secret scanning in the actor of the
// revocations it causes.
const scannerGitHub = "github"

// githubSecretScanning answers GitHub's secret scanning partner program:
// the raw body's signature is checked first (401, nothing recorded), then
// each reported secret that is a token's revokes it (reason leaked, the
// report in the event) and is labelled true_positive; anything else is
// false_positive.
func (s *Server) githubSecretScanning(w http.ResponseWriter, r *http.Request) error {
	if s.secretScanning == nil {
		return &apiError{status: http.StatusNotImplemented, code: sdk.CodeInternal, message: "secret scanning is not configured on this node"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: sdk.CodePayloadTooLarge, message: fmt.Sprintf("the request body is larger than %d bytes", tooLarge.Limit)}
		}
		return badRequest("the request body could not be read")
	}
	err = s.secretScanning.Verify(r.Context(), r.Header.Get(secretscan.HeaderKeyID), r.Header.Get(secretscan.HeaderSignature), body)
	switch {
	case errors.Is(err, secretscan.ErrBadSignature):
		return &apiError{status: http.StatusUnauthorized, code: sdk.CodeUnauthorized, message: "the report is not signed by a published secret scanning key",
			wwwAuthenticate: `ECDSA-SHA256 realm="tokenledger"`}
	case err != nil:
		return fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	var reports []sdk.SecretScanningReport
	// Fields GitHub may add later are ignored, as the partner program
	// asks.
	if err := json.Unmarshal(body, &reports); err != nil {
		return badRequest("the body is not a JSON array of findings: " + describeJSONError(err))
	}
	if reports == nil {
		return badRequest("the body must be a JSON array of findings")
	}
	if len(reports) > MaxSecretScanningReports {
		return badRequest(fmt.Sprintf("%d findings, at most %d in one report", len(reports), MaxSecretScanningReports))
	}
	leaks := make([]domain.LeakReport, len(reports))
	for i, rep := range reports {
		if rep.Token == "" {
			return badRequest(fmt.Sprintf("finding %d has no token", i))
		}
		leaks[i] = domain.LeakReport{URL: rep.URL, Source: rep.Source}
		if leaks[i].Source == "" {
			leaks[i].Source = "unknown"
		}
		if err := leaks[i].Validate(); err != nil {
			return badRequest(fmt.Sprintf("finding %d: %v", i, err))
		}
	}
	out := make([]sdk.SecretScanningLabel, len(reports))
	for i, rep := range reports {
		label, err := s.ledger.ReportLeaked(r.Context(), scannerGitHub, rep.Token, leaks[i], requestID(r.Context()))
		if err != nil {
			return err
		}
		out[i] = sdk.SecretScanningLabel{TokenRaw: rep.Token, TokenType: rep.Type, Label: string(label)}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}
