package ledger

import (
	"context"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// Appender appends events under a concurrency expectation and returns them
// as stored. It is the only way events reach the lifecycle stream: every
// lifecycle event is decided by package domain and appended by a use case
// of this package. *eventstore.Store implements it.
type Appender interface {
	Append(ctx context.Context, expect eventstore.Expect, events ...domain.Envelope) ([]domain.Envelope, error)
}

// EventStore is what the use cases need of the event store: appends, one
// atomic append of changes to several aggregates (rotation), and the
// histories the use cases decide on and the audit reads.
// *eventstore.Store implements it.
type EventStore interface {
	Appender
	audit.HistorySource
	AppendAtomic(ctx context.Context, changes ...eventstore.Change) ([]domain.Envelope, error)
}
