// Package validator answers "is this token valid, and whose is it?" in
// memory, in well under a microsecond, for an API gateway or a backend
// that embeds it (tokenledger serve does).
//
// A Validator loads a consistent snapshot of the read model from
// PostgreSQL (projections.ReadModel.Snapshot) together with the stream
// sequence it reflects, then follows the lifecycle stream from the next
// sequence with an ordered consumer, applying every token.issued,
// token.expiry_set, token.revoked and owner.tokens_revoked event with the
// domain's rules: revocation is terminal, an owner-wide revocation covers
// the owner's tokens whose issued event precedes it in the stream (or
// that were created before its "until"), and a token is expired from the
// instant of its expiry on.
//
//	v, err := validator.New(validator.Config{Store: store, Projections: read})
//	if err != nil { ... }
//	if err := v.Start(ctx); err != nil { ... }
//	defer v.Close(context.Background())
//	p, err := v.Validate(ctx, secret)
//	switch {
//	case err == nil:                      // p.Owner, p.Scopes
//	case errors.Is(err, validator.ErrRevoked): ...
//	}
//
// # Embedding
//
// A program that is not tokenledger makes a running validator with one
// call, Connect, from URLs and credentials: it connects to NATS and
// PostgreSQL, opens the existing streams without ever creating or
// changing them, loads the snapshot over a read-only pool it closes once
// loaded, and starts; Close releases all of it. Embed lists the NATS
// permissions it needs: read the streams, publish usage, nothing else.
//
// # The read path
//
// Validate checks the secret's format and checksum and hashes it
// (domain.CheckSecret), finds the token by the id inside the secret,
// compares hashes in constant time, checks revocation, the owner's
// revocations and expiry against the Clock, counts the use and returns a
// Principal whose Owner and Scopes are shared, interned values. For a
// known token that is no I/O and no allocation, and no lock beyond a short
// per-shard mutex the first time a token is used in a flush interval.
//
// A secret whose token is not in memory is refused from memory unless its
// id is young (the time inside the ULID within Config.YoungWindow of now):
// only then may the tail not have delivered it yet, and the token's history
// is loaded from the event store, so a token is usable on every node as
// soon as its issue call returns. Such loads are coalesced per id, rate
// limited for the whole validator, and a miss is remembered for a short
// time, so forged ids cannot be turned into load on the store.
//
// # Memory
//
// A token costs one 48-byte entry (id, 128 bits of the secret's hash, one
// word packing the expiry to the microsecond, the creation time's
// microseconds and the revocation flags, and the numbers of its grant, an
// interned owner, scope set and kind, and of its usage cell) in pages that
// never move and hold no pointers (the garbage collector never scans
// them), plus one 4-byte slot of an open-addressing index kept between
// 55% and 80% full. Owners, scope sets and grants are interned once each;
// usage counters live in cells that only used tokens have; stream
// sequences and families are kept only for the few tokens that need them.
// BenchmarkMemoryPerToken measures the live heap per token: 61.6 bytes
// with 1,000,000 tokens of 100,000 owners, 60.6 with 10,000,000 of
// 1,000,000.
//
// Only tokens that can still validate stay: revoked tokens, and tokens
// expired more than Config.EvictionGrace ago, are evicted by a periodic
// sweep and left out of the snapshot a validator starts from, and are then
// refused from memory like any unknown old id. A rotated-out token stays
// while its rotation family has a token that can validate, so that its
// reuse is still detected. BenchmarkChurn shows the heap following the
// live set through a simulated year. See evict.go.
//
// The snapshot is read with only those tokens (projections.ReadModel.
// ValidatorSnapshot filters in SQL and hands rows decoded from the wire
// without allocating); BenchmarkStartFromSnapshot measures a start's time
// and peak memory.
//
// # More tokens than one node holds
//
// With Config.Capacity the validator keeps a hot set of about that many
// tokens, the least recently validated evicted first by a clock sweep
// that reads the use times Validate writes anyway (hotset.go), and looks
// any other token up in the event store by id when it is presented: its
// events from the lifecycle stream, so a cold token's revocation is seen
// as soon as it is stored. Such cold lookups are coalesced per id, a miss
// is remembered, and they are rate limited: beyond the limit a cold token
// is refused with ErrLookupLimited. docs/validator-memory.md has the
// design and its numbers.
//
// # Staleness
//
// A validator that stops following the stream (NATS disconnected, the
// consumer failing, an event it cannot decode) keeps answering from memory
// for Config.MaxStaleness, then refuses with ErrStale (or keeps answering,
// with Config.FailOpen). It subscribes again from the sequence after the
// last event it applied, so nothing is skipped nor applied twice. Status
// reports the applied sequence and staleness for readiness checks.
//
// # Usage
//
// Uses are counted per token in memory and written every
// Config.FlushInterval as one usage batch (domain.UsageBatch) holding every
// token used, to the usage stream, from a goroutine, through a bounded
// queue. A
// crash loses at most the uses of one interval; Close flushes them.
package validator
