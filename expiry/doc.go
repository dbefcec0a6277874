// Package expiry announces tokens' expiries: a Scheduler finds, in the read
// model, the api tokens whose expiry notice has fallen due (a lead time
// before the expiry, default 30, 7 and 1 days, and the expiry itself) and
// asks the ledger to record it as an event (token.expiring.v1,
// token.expired.v1; see domain.Token.AnnounceExpiry).
//
// The notices are facts in the stream: history, exports and `state --at`
// show them, webhooks deliver them, and no validation decision depends on
// them. Each has an event id derived from the token, the lead time and the
// expiry, and the ledger checks the token's history before appending, so
// two schedulers, a restart or a scheduler looking at the same tokens again
// never record a notice twice.
//
// # Progress
//
// Per lead time the scheduler keeps, in the table expiry_watermarks, the
// instant up to which it has dealt with every token whose notice fell due.
// Each pass looks at the tokens whose notice fell due after that instant
// minus Config.Overlap (so a token the projector wrote late is still seen)
// and up to now, then moves the instant to now. A token it could not
// announce (the event store away) keeps the watermark where it was, so the
// next pass tries again. A lead time without a watermark (the first start,
// a lead time added later) starts at the first pass: notices that fell due
// before are not announced late.
//
// The scheduler runs in the `project` process that leads the projection
// (and in `dev`); a standby does not run it, and if two run at once for a
// moment nothing is recorded twice.
package expiry
