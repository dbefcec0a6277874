package validator

import (
	"sync/atomic"
	"time"
)

// counters are the validator's running totals.
type counters struct {
	valid, malformed, unknown, expired, revoked, ownerRevoked, stale atomic.Uint64

	lookups, lookupsCoalesced, lookupsLimited, negativeHits, lookupErrors atomic.Uint64

	usagePublished, usageDropped, usesPublished, usesDropped, usagePublishErrors atomic.Uint64

	eventsApplied, tailRestarts atomic.Uint64
	evicted, capacityEvicted    atomic.Uint64

	coldLookups, coldCoalesced, coldLimited atomic.Uint64

	ipNotAllowed atomic.Uint64
}

// Stats are a validator's counters since New. Every field only grows.
type Stats struct {
	// Validations by result. Valid is counted from the usage counters
	// when they are flushed, so it lags by up to one FlushInterval: the
	// hot path then updates no counter shared by all tokens.
	Valid, Malformed, Unknown, Expired, Revoked, OwnerRevoked, Stale uint64

	// Lookups is the number of event store loads for young unknown ids;
	// LookupsCoalesced the callers that shared another caller's load;
	// LookupsLimited the young ids refused because the rate limit was
	// reached; NegativeHits the young ids refused because a recent load
	// did not find them; LookupErrors the loads that failed.
	Lookups, LookupsCoalesced, LookupsLimited, NegativeHits, LookupErrors uint64

	// UsageEventsPublished and UsageEventsDropped count usage batches (one
	// per flush, more for a flush too large for one message) stored in,
	// and given up on for, the usage stream; UsesPublished and
	// UsesDropped the uses those events count. UsagePublishErrors counts
	// failed attempts (a batch is retried until stored or dropped).
	UsageEventsPublished, UsageEventsDropped, UsesPublished, UsesDropped, UsagePublishErrors uint64

	// EventsApplied is the number of lifecycle events the tail applied;
	// TailRestarts how many times following the stream failed and was
	// started again.
	EventsApplied, TailRestarts uint64

	// Evicted is the number of tokens evicted from memory as they can no
	// longer validate (see Config.EvictionGrace).
	Evicted uint64

	// ColdLookups is the number of event store loads of tokens not in
	// memory whose id is not young (cold lookups: only with a
	// Config.Capacity); ColdLookupsCoalesced the callers that shared
	// another caller's load; ColdLookupsLimited the cold tokens refused
	// with ErrLookupLimited. CapacityEvicted is the number of tokens that
	// could still validate, evicted because the memory held more than
	// Capacity tokens. Failed cold loads count in LookupErrors, cold ids
	// found nowhere in NegativeHits once remembered.
	ColdLookups, ColdLookupsCoalesced, ColdLookupsLimited, CapacityEvicted uint64

	// IPNotAllowed is the number of validations refused with
	// ErrIPNotAllowed: from outside the token's allowed networks.
	IPNotAllowed uint64
}

// Stats returns the validator's counters. It is cheap and safe for
// concurrent use.
func (v *Validator) Stats() Stats {
	c := &v.stats
	return Stats{
		Valid:                c.valid.Load(),
		Malformed:            c.malformed.Load(),
		Unknown:              c.unknown.Load(),
		Expired:              c.expired.Load(),
		Revoked:              c.revoked.Load(),
		OwnerRevoked:         c.ownerRevoked.Load(),
		Stale:                c.stale.Load(),
		IPNotAllowed:         c.ipNotAllowed.Load(),
		Lookups:              c.lookups.Load(),
		LookupsCoalesced:     c.lookupsCoalesced.Load(),
		LookupsLimited:       c.lookupsLimited.Load(),
		NegativeHits:         c.negativeHits.Load(),
		LookupErrors:         c.lookupErrors.Load(),
		UsageEventsPublished: c.usagePublished.Load(),
		UsageEventsDropped:   c.usageDropped.Load(),
		UsesPublished:        c.usesPublished.Load(),
		UsesDropped:          c.usesDropped.Load(),
		UsagePublishErrors:   c.usagePublishErrors.Load(),
		EventsApplied:        c.eventsApplied.Load(),
		TailRestarts:         c.tailRestarts.Load(),
		Evicted:              c.evicted.Load(),
		ColdLookups:          c.coldLookups.Load(),
		ColdLookupsCoalesced: c.coldCoalesced.Load(),
		ColdLookupsLimited:   c.coldLimited.Load(),
		CapacityEvicted:      c.capacityEvicted.Load(),
	}
}

// Status is what a readiness check needs to know about a validator.
type Status struct {
	// Running is true between a successful Start and Close.
	Running bool
	// SnapshotSequence is the stream sequence the loaded snapshot
	// reflected; AppliedSequence the sequence of the last event applied
	// since (equal to SnapshotSequence until one is).
	SnapshotSequence, AppliedSequence uint64
	// LastEventTime is the time recorded in the last applied event;
	// LastAppliedAt when (by the validator's clock) it was applied. Both
	// are zero until the tail applies an event.
	LastEventTime, LastAppliedAt time.Time
	// StaleSince is when the validator stopped following the stream; zero
	// while it follows it. Stale reports that this has lasted longer than
	// MaxStaleness, so Validate refuses with ErrStale (unless FailOpen).
	StaleSince time.Time
	Stale      bool
	// StaleReason says why the validator is not following the stream;
	// nil while it is.
	StaleReason error
	// Tokens and Owners are the numbers of tokens and owners in memory.
	Tokens, Owners int
}

// Status returns the validator's state. It is safe for concurrent use.
func (v *Validator) Status() Status {
	s := Status{
		Running:          v.run.Load() == runRunning,
		SnapshotSequence: v.snapshotSeq.Load(),
		AppliedSequence:  v.applied.Load(),
		LastEventTime:    fromMicros(v.lastEventTime.Load()),
		LastAppliedAt:    fromMicros(v.lastAppliedAt.Load()),
		Tokens:           v.st.tokens(),
		Owners:           v.st.ownersLen(),
	}
	v.health.mu.Lock()
	since, reason := v.staleSince.Load(), v.health.lastErr
	v.health.mu.Unlock()
	if since != 0 {
		s.StaleSince = fromMicros(since)
		s.Stale = v.clock.Now().UnixMicro()-since > v.maxStale
		s.StaleReason = reason
	}
	return s
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
