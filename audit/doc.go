// Package audit answers an auditor's two questions from the event stream,
// the ledger's source of truth: what happened to a token or an owner, and
// what every token was at a past instant.
//
// # History
//
// Timeline turns stored events into entries a person reads: when, which
// stream sequence, which event, who did it and a sentence such as
//
//	issued by token:01JD… (owner admin) for owner alice, name "ci", scopes repo:read, expires 2026-12-22 10:00:03
//	expiry set to 2026-12-01 00:00:00 (reason: rotated, rotated to 01JE…) by token:01JD… (owner alice)
//	revoked by token:01JD… (owner admin), reason: leaked
//	all tokens revoked by token:01JD… (owner admin), reason: compromised, no new tokens until 2026-12-31 00:00:00
//
// Actors recorded as "token:<id>" are told with the owner of that token
// when it is known. A token's secret, and the hash of it that token.issued
// carries, never appear in an entry.
//
// Every history is complete up to a stream sequence that it names
// (History.Sequence): the lifecycle stream's last sequence when the history
// was started. Every event of the history stored at or before it is
// included, and none stored after it, so an auditor knows exactly which
// part of the stream an answer covers.
//
// TokenHistory gathers a token's own events and the owner-wide revocation
// that revoked it: the first owner.tokens_revoked of its owner, in stream
// order, that covers it (its token.issued precedes the revocation, or it
// was created before the revocation's until; see domain.Owner.Covers),
// unless the token had been revoked by itself before. That event changed
// the token's status; later owner-wide revocations changed nothing for it
// and are told in the owner's history only.
//
// OwnerHistory gathers everything of one owner: its owner-wide events
// (owner.tokens_revoked) and every event of every token of the owner,
// merged in stream order. Token subjects do not name the owner
// (eventstore.Subjects), so the owner's tokens are found in two parts that
// together are exact:
//
//   - the read model lists every token of the owner it has projected. It
//     is read after its checkpoint C, the sequence of the last event the
//     projection applied in the same transaction as its rows, so the list
//     holds at least every token issued at or before C;
//   - the stream from C+1 to the history's sequence is read with a
//     subject filter that matches token.issued events only, and the tokens
//     issued there for the owner are added.
//
// The second part costs what the projector's lag is (usually a few
// events, and only token.issued events travel), not the length of the
// stream; with the projector stopped it grows with the events appended
// since. Each token's events are then loaded by the token's own subjects.
// The read model being unavailable makes OwnerHistory fail rather than
// answer an incomplete history.
//
// # State at an instant
//
// StateAt replays the lifecycle stream through domain.State, the same fold
// the projections are checked against, keeping every event whose
// Envelope.Time is at or before the instant asked for, in stream order.
// Event time is what "as it was at T" means to an auditor: the instant the
// ledger decided a change is the instant the change took effect. (The
// stream's own storage timestamps differ from event times by the append
// latency and by clock skew between nodes.) Which tokens an owner-wide revocation covers is still decided by
// stream order, exactly as everywhere else: a revocation at or before T
// covers the owner's tokens whose token.issued precedes it in the stream.
//
// Usage comes from the usage stream, whose events with a time at or before
// T are counted (a usage batch, recorded by a validator at the end of a
// flush interval, for each token it holds; a token.used event for its
// token): the last use is the latest LastAt of those uses and the use
// count their sum, combined with any usage recorded in
// the lifecycle stream as the read model combines them. The usage stream
// keeps events for its retention only (eventstore.Config.UsageMaxAge, thirty
// days by default): uses recorded before that are no longer known, so for an
// instant older than the retention the last use and the use count tell only
// the uses still retained, and may say "never used" of a token that was
// used.
//
// For an instant the live projection had fully applied (every event up to
// T, none after), StateAt gives the very rows and statuses the projection
// answered at T. StateAt reads the whole of both streams on every call: its
// cost grows with the stream, its memory with the number of tokens.
package audit
