// Package eventstore keeps tokenledger's events in NATS JetStream, the
// source of truth: an append-only lifecycle stream holding every token and
// owner event forever, and a usage stream holding usage events for a
// configurable time.
//
// # Layout
//
// Lifecycle events are stored on
//
//	<prefix>.token.<TokenID>.<name>   for example tl.token.01J….issued_v1
//	<prefix>.owner.<owner>.<name>     for example tl.owner.alice_40example_2Ecom.tokens_revoked_v1
//
// where <name> is the event type without its aggregate prefix, dots
// replaced by '_', and <owner> is OwnerToken(owner). Usage is stored in
// the usage stream: the usage batches validators record (one per flush,
// domain.UsageBatch) on <prefix>.usage.batch, and token.used events (one
// per token, what validators recorded before batches) on
// <prefix>.usage.<TokenID>. Every message carries the event id as
// Nats-Msg-Id and the Registry encoding of the envelope as body: JSON, or
// for a usage batch its binary form (domain.Registry.MarshalUsageBatch).
// The Subjects type builds these names for consumers.
//
// # Append-only
//
// Both streams deny delete and purge (settings the server does not let
// anyone turn off later), allow no rollup, no per-message TTL and no
// subject delete markers. The lifecycle stream has no age, count or size
// limit, since limits remove messages even from a stream that denies
// deletes; only the usage stream ages out, after Config.UsageMaxAge.
//
// # Concurrency
//
// Every append names an Expect: the stream sequence of the last event of
// one aggregate as the caller saw it. The server stores the events only if
// that still holds, so of several writers deciding from the same state
// exactly one succeeds and the others get ErrConflict. Multi-event
// appends are atomic batches: all events are stored, contiguously and in
// order, or none.
//
// # What an acknowledged append means
//
// Append returns success only after the server acknowledged the events.
//
// On a single server (Replicas 1) the acknowledgement is sent once the
// events are written to the operating system: they survive a crash of the
// server process. The file store flushes them to disk (fsync) on its sync
// interval, two minutes by default, so a power loss or kernel crash can
// lose what was acknowledged within the last interval. A server started
// with SyncAlways fsyncs every write before acknowledging it, which makes
// an acknowledged append survive power loss too, at a cost in append
// throughput.
//
// On a replicated stream (Replicas 3) the acknowledgement is sent once a
// majority of the replicas (two of three) stored the events, so an
// acknowledged append survives the loss of any one server. Each replica
// fsyncs on its own interval as above; losing power to a majority at once
// within one interval can lose acknowledged appends unless the servers
// run with SyncAlways.
//
// # Retries and lost acknowledgements
//
// An append whose answer does not arrive is sent again with the same event
// ids and the same expectation; the server drops an id it stored within
// Config.DuplicateWindow. When the answer is a conflict or a duplicate,
// Append checks whether its own events are in fact stored and then reports
// success with their original sequences. So an event is never stored
// twice, and an append that was stored is never reported as failed.
//
// # Costs
//
// A single-event append is one request (tens of microseconds on loopback
// to one server, a few hundred to a three-server cluster). A multi-event
// append is an atomic batch, which a single-replica file stream stages in
// a temporary file store of its own (a directory and fsynced files per
// batch): on one server it costs milliseconds, not microseconds, so keep
// multi-event appends for what must be atomic (rotation). Replicated
// streams stage batches in memory.
//
// # Reading
//
// Load reads one aggregate's events: it asks the stream leader which
// subjects of the aggregate hold how many events, then fetches each subject
// with a direct batch get, which any replica may answer; a replica that
// lags behind the leader is asked again until it has caught up, so a Load
// reflects every append acknowledged before it. (Paging through the
// aggregate's wildcard filter instead makes the server walk the stream
// message by message.) Read replays the whole lifecycle stream with
// pipelined direct batch gets (see Scanner), up to the end captured when
// it starts. A Follower reads a stream live, from a sequence on, for the
// validators' tail and the workers; durable consumers (EnsureDurable) serve
// per-message work through package eventstore/subscriber.
// A message that is not a valid event stops a read with a *DecodeError
// naming its stream sequence; nothing is skipped.
//
// # Protecting the streams
//
// The stream settings refuse purges, message deletes and rollups to
// everyone, but deleting a whole stream, or updating it to add a limit
// that removes messages, is refused only by permissions: deny
// ProtectedAPISubjects to every user but the operator's.
package eventstore
