package projections

import (
	"time"
)

// Progress is where a projection stands.
type Progress struct {
	// Name is the projection's name.
	Name string
	// Checkpoint is the sequence of the last event applied (or explicitly
	// skipped): from PostgreSQL, or, while PostgreSQL cannot be reached,
	// the last one this projector committed or read.
	Checkpoint uint64
	// StreamLast is the lifecycle stream's last sequence.
	StreamLast uint64
	// LagEvents is StreamLast - Checkpoint (0 when the checkpoint is ahead).
	LagEvents uint64
	// LagSeconds is the age of the oldest event not applied yet, by the
	// stream's storage time; 0 when caught up.
	LagSeconds float64
	// Halted is set while the projector is stopped at an event it cannot
	// apply.
	Halted *Halt
	// Skipped is the event this projector skipped because SkipSequence
	// named it, if it did.
	Skipped *Halt
	// LastError is the last failure to apply an event or to read the
	// checkpoint, cleared by the next success; "" when there is none.
	LastError string
}

// Halt describes an event the projector stopped at (or skipped).
type Halt struct {
	// Sequence is the event's stream sequence.
	Sequence uint64
	// Subject is the subject it is stored on.
	Subject string
	// Reason says why it cannot be applied.
	Reason string
	// Since is when the projector first met it.
	Since time.Time
}

// UsageStats are the counters of a UsageConsumer since it was created.
type UsageStats struct {
	// Fetches is the number of batches read from the usage stream.
	Fetches uint64
	// Batches is the number of committed transactions that applied events.
	Batches uint64
	// Events is the number of events applied.
	Events uint64
	// Rows is the number of usage rows written: at most the distinct
	// tokens of each batch, summed.
	Rows uint64
	// Statements is the number of usage write statements executed: one
	// per batch that wrote rows.
	Statements uint64
	// Redelivered is the number of events delivered again after they were
	// applied, and skipped.
	Redelivered uint64
	// Deferred is the number of events read after a gap and not applied
	// (see the UsageConsumer documentation); they are read again.
	Deferred uint64
	// AgedOut is the number of events the usage stream dropped before they
	// were projected.
	AgedOut uint64
	// Extensions is the number of session extensions appended.
	Extensions uint64
	// ExtensionConflicts is the number of extensions decided again because
	// the token changed meanwhile.
	ExtensionConflicts uint64
	// ExtensionErrors is the number of sessions not slid because of a
	// failure; their next use tries again.
	ExtensionErrors uint64
	// SlidThrough is the usage-stream sequence through which batches are
	// applied and their sessions slid (or given up on, see
	// ExtensionErrors).
	SlidThrough uint64
}

// UsageProgress is where the usage projection stands.
type UsageProgress struct {
	// Name is the projection's name.
	Name string
	// Checkpoint is the usage-stream sequence of the last event applied:
	// from PostgreSQL, or, while PostgreSQL cannot be reached, the last one
	// this consumer committed or read.
	Checkpoint uint64
	// StreamFirst and StreamLast are the usage stream's first and last
	// sequences (events before StreamFirst aged out).
	StreamFirst, StreamLast uint64
	// LagEvents is the number of events in the stream not applied yet.
	LagEvents uint64
	// LagSeconds is the age of the oldest of them, by the stream's storage
	// time; 0 when caught up.
	LagSeconds float64
	// Halted is set while the consumer is stopped at an event it cannot
	// apply.
	Halted *Halt
	// Skipped is the event this consumer skipped because SkipSequence
	// named it, if it did.
	Skipped *Halt
	// LastError is the last failure, or the gap the consumer waits on,
	// cleared when it advances; "" when there is none.
	LastError string
	// Stats are the consumer's counters.
	Stats UsageStats
}
