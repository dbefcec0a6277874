// Package consumers holds the workers that follow tokenledger's event
// streams. LifecycleProjector keeps the read model in PostgreSQL (package
// projections) up to date with the lifecycle stream; UsageConsumer folds
// the usage stream into it. Both read through eventstore.Follower; work
// that is per message (delivering an event somewhere) reads a durable
// consumer through package eventstore/subscriber instead.
//
// # Exactly once
//
// The checkpoint in PostgreSQL (the sequence of the last applied event) is
// the truth, and the only position there is. The projector reads the
// checkpoint and reads the lifecycle stream from the event right after it
// through an ordered consumer of its own: ephemeral, without
// acknowledgements, checked by the client for gaps and recreated by it
// after a missed heartbeat or a reconnect, so events arrive in stream
// order and none is passed over. It takes what has arrived, up to a
// thousand events, and applies it with projections.ReadModel.ApplyNext: the
// events' changes and the checkpoint commit in one transaction, which
// first locks the checkpoint row, skips events at or below it, and refuses
// a batch that does not continue it. Each event is thus applied exactly
// once, across crashes and with several projectors of the same name
// running at once (the one behind skips what the other applied).
//
// Nothing on the server remembers what was delivered, so nothing holds a
// restarted projector back: after a crash, SIGKILL or a stop it reads from
// the checkpoint at once (a durable consumer would hold a killed process's
// delivery until its acknowledgement timeout expired). Whenever the
// projector doubts where it stands (a read failed, a batch did not
// continue the checkpoint, it halted) it reads the checkpoint again and
// starts a new read right after it.
//
// The usage consumer (UsageConsumer) reads the usage stream the same way.
//
// # Failures
//
// A transient failure (PostgreSQL down or restarting, a timeout, the
// server unreachable) is retried forever, with exponential backoff from
// RetryInitial up to RetryMax, with the same batch; Status and Ready report
// the growing lag, and the projector catches up when PostgreSQL is back.
//
// # Halting at a poison event
//
// An event that cannot be decoded (its type is not registered:
// domain.ErrUnknownEventType; its content is invalid, or it is stored on a
// subject that does not match it: domain.ErrCorruptEvent, reported as an
// *eventstore.DecodeError), or that PostgreSQL refuses for good (a
// constraint or data error, see projections.Permanent), is never skipped
// silently. The projector halts at it:
//
//   - the events before it in the batch are applied and committed; it and
//     everything after it are not: the checkpoint stays just before it.
//     The projector reads the event again and again, after a pause that
//     doubles from RetryInitial up to RetryMax;
//   - the halt is logged once at error level ("lifecycle projection
//     HALTED") with the sequence, subject, event id and reason;
//   - Status.Halted names the sequence, subject, reason and since when, and
//     Ready fails with an error wrapping ErrHalted and the cause.
//
// The halt ends by itself if the event becomes applicable (for example the
// checkpoint moved past it because another projector of the same name, on
// a newer binary, applied it).
//
// # Operator procedure for a halted projection
//
//  1. Read the halt: the error log line, Status.Halted or the readiness
//     error give the stream sequence N, the subject and the reason. Inspect
//     the stored message, for example with
//     `nats stream get TOKENLEDGER N`.
//  2. Unknown event type (domain.ErrUnknownEventType): a newer binary
//     recorded an event this one does not know. Deploy the binary that
//     knows the type to the projectors (all of them, or stop the older
//     ones). Nothing else is needed: the event is read again and
//     applied, and the projection continues. Never skip such an event.
//  3. Corrupt event (domain.ErrCorruptEvent): no binary will ever decode it.
//     Confirm from the stored message that it carries nothing the read model
//     needs, or record the correcting events through the API first. Then
//     restart the projector once with the explicit escape hatch
//     LifecycleConfig.SkipSequence = N (the command line's
//     `--skip-sequence N`). The projector skips event N only if it is the
//     next event to apply and it still fails to decode; it logs the skip at
//     error level ("SKIPPED an undecodable event"), reports it in
//     Status.Skipped, and advances the checkpoint past N in the same kind of
//     transaction as an applied event, so the skip is durable. A
//     SkipSequence that names another event, or an event that decodes,
//     skips nothing. Remove the setting afterwards; it is harmless if left,
//     because an undecodable event at or below the checkpoint is simply
//     passed over.
//  4. PostgreSQL refuses the event (a constraint or data error): the read
//     model and the events disagree, which is a defect of the projection.
//     Deploy a fixed binary; do not skip.
//
// Reading the stream with eventstore.Store.Read stops at the same event
// (with its *eventstore.DecodeError), so a rebuild of the projection from
// the stream must be told about a skipped sequence as well.
package consumers
