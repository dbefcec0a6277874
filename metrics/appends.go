package metrics

import (
	"errors"
	"time"

	"github.com/tokenledger/tokenledger/eventstore"
)

// Operations that append to the event store, the values of the op label.
const (
	OpIssue        = "issue"
	OpSetExpiry    = "set_expiry"
	OpSetCIDRs     = "set_cidrs"
	OpUpdate       = "update"
	OpRevoke       = "revoke"
	OpRotate       = "rotate"
	OpRevokeOwner  = "revoke_owner"
	OpRevokeSecret = "revoke_secret"
)

// appendBuckets span an append from a single-node in-process store (tens of
// microseconds) to a replicated one under load (hundreds of milliseconds).
var appendBuckets = []float64{
	10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1,
}

// ObserveAppend records one append of operation op that took d and returned
// err: its duration whatever the outcome, and a conflict when err matches
// eventstore.ErrConflict (errors.Is), an error for any other non-nil err.
// op becomes a label value: pass one of the Op constants or another fixed
// name, never request data.
func (m *Metrics) ObserveAppend(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.appendDuration.WithLabelValues(op).Observe(d.Seconds())
	switch {
	case err == nil:
	case errors.Is(err, eventstore.ErrConflict):
		m.appendConflicts.WithLabelValues(op).Inc()
	default:
		m.appendErrors.WithLabelValues(op).Inc()
	}
}

// ObserveRetry records that operation op, refused by a conflict, is decided
// and appended again. op is as for ObserveAppend.
func (m *Metrics) ObserveRetry(op string) {
	if m == nil {
		return
	}
	m.appendRetries.WithLabelValues(op).Inc()
}
