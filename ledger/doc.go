// Package ledger is tokenledger's application layer: every use case that
// changes the ledger, decided by the domain and stored in the event store,
// and the reads that go with them. One file each:
//
//   - issue.go: Service.Issue, a new token;
//   - expiry.go: Service.SetExpiry, a token's expiry set or cleared;
//   - revoke.go: Service.Revoke, one token; Service.RevokeSecret, the token
//     whose secret is presented (RFC 7009); Service.RevokeReusedFamily, a
//     rotation family whose rotated-out secret was presented after its
//     grace;
//   - rotate.go: Service.Rotate, a successor token, the old one expiring
//     after a grace;
//   - owner.go: Service.RevokeOwner, every token of an owner issued so far,
//     new ones blocked until an instant if asked;
//   - leak.go: Service.ReportLeaked, a secret scanner's report of a leaked
//     secret;
//   - expiry_notice.go: Service.AnnounceExpiry, the notice of an expiry
//     due soon (run by the expiry scheduler);
//   - session.go: SessionSlider, a session's expiry slid after use (run by
//     the usage consumer);
//   - bootstrap.go: BootstrapAdmin, the first admin token of a ledger;
//   - read.go: Service.Get, Service.List and Service.Events.
//
// The use cases of owners and admins are authorized for a Caller (see
// Authorization); the system's (expiry notices, session slides, reuse
// detection, secret scanning, bootstrap) record their own actor.
//
// # Writes
//
// Every mutation loads the aggregates it decides on from the event store (the
// source of truth, not the read model, which may lag), lets the domain decide,
// and appends the resulting events with an expectation on the sequence it
// read. When another writer got there first the append fails with
// eventstore.ErrConflict and the whole decision is made again from a fresh
// load, up to Config.MaxAttempts times; only then does the caller see
// ErrConflict. A call returns success only after the store acknowledged the
// events, and then hands them to the Config.Observer (the local validator), so
// the node that handled a revocation rejects the token at once.
//
// # Authorization
//
// A Caller with the scope ledger:admin may do everything for every owner.
// Any other caller acts for its own owner only: another owner's token is
// ErrNotFound (its existence is not revealed), acting for another owner is
// ErrForbidden, it may issue only tokens whose scopes are a subset of its own
// (ErrForbidden otherwise), and it may shorten a token's expiry but not extend
// or clear it (ErrForbidden). Lifetimes are bounded by the Policy for
// everyone: the domain refuses anything beyond it with
// domain.ErrPolicyViolation.
//
// # Reads
//
// Get and Events read the event store, so they reflect every acknowledged
// write; usage counters come from the read model. Events is the token's
// history as package audit assembles it (audit.TokenHistory): its own
// events and the owner-wide revocation that revoked it, complete up to the
// stream sequence it names. List reads the read model
// in PostgreSQL, which follows the stream within the projector's lag.
package ledger
