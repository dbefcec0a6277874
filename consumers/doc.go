// Package consumers holds the workers that follow tokenledger's event
// streams. LifecycleProjector keeps the read model in PostgreSQL (package
// projections) up to date with the lifecycle stream.
//
// # Exactly once
//
// The projector reads the lifecycle stream through a durable JetStream
// consumer named after the projection (LifecycleConfig.Name), with explicit
// acknowledgements and at most one unacknowledged event at a time, so
// events arrive in stream order and none is passed over. The consumer is
// created by the projector, not by watermill (whose consumers are not
// durable), and outlives it. A watermill router with Recoverer and Retry
// middleware runs the handler, which decodes each event with the event
// store's registry and calls projections.Store.ApplyBatch: the event's
// changes and the checkpoint (the sequence of the last applied event)
// commit in one transaction, and events at or below the checkpoint are
// skipped. Delivery is at least once; a redelivery after any crash changes
// nothing, so each event is applied exactly once.
//
// The checkpoint is the truth; the consumer's position only saves work. At
// start the projector reads the checkpoint and, if the consumer has
// acknowledged events beyond it (the read model was restored from a backup
// or recreated), recreates the consumer right after the checkpoint.
//
// # Failures
//
// A transient failure (PostgreSQL down or restarting, a timeout) is retried
// forever, with exponential backoff from RetryInitial up to RetryMax. While
// it retries, the projector tells the server at every attempt that it is
// still working on the event, so the server does not hand it to another
// projector; Status and Ready report the growing lag, and the projector
// catches up when PostgreSQL is back.
//
// # Halting at a poison event
//
// An event that cannot be decoded (its type is not registered:
// domain.ErrUnknownEventType; its content is invalid, or it is stored on a
// subject that does not match it: domain.ErrCorruptEvent, reported as an
// *eventstore.DecodeError), or that PostgreSQL refuses for good (a
// constraint or data error), is never skipped silently. The projector
// halts at it:
//
//   - the event is not acknowledged; it is handed back to the server with
//     a delay (RetryInitial doubling up to RetryMax) and delivered again and
//     again, and since only one event may be unacknowledged, nothing after
//     it is delivered: the checkpoint stays just before it;
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
//     ones). Nothing else is needed: the event is delivered again and
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
//     acknowledged.
//  4. PostgreSQL refuses the event (a constraint or data error): the read
//     model and the events disagree, which is a defect of the projection.
//     Deploy a fixed binary; do not skip.
//  5. Sequence gap ("sequence gap"): the consumer delivered an event while
//     earlier ones were not applied, which happens only if the read model
//     was rewound under a running projector. Restart the projector: it
//     repositions the consumer at the checkpoint. Restore a read model only
//     with its projectors stopped.
//
// Reading the stream with eventstore.Store.Read stops at the same event
// (with its *eventstore.DecodeError), so a rebuild of the projection from
// the stream must be told about a skipped sequence as well.
package consumers
