// Package webhooks delivers lifecycle events to HTTP endpoints that
// operators register (Manager), signed by the Standard Webhooks
// convention, at least once, in stream order per token, and never lost
// across a crash of the dispatcher (Dispatcher).
//
// # Fan-out
//
// The dispatcher reads the lifecycle stream with a durable JetStream
// consumer of its own (Config.Consumer) through watermill's router
// (package eventstore/subscriber), one unacknowledged event at a time, so
// events are fanned out in stream order. One statement inserts an event's
// deliveries, one per endpoint that wants it (enabled, registered before
// the event, of the event's owner or of every owner, subscribed to its
// type), and only then is the message acknowledged: a crash before that
// makes the server deliver it again (after Config.AckWait), and the insert
// skips deliveries made already. Transient failures are retried by the
// router's Retry middleware; an event that is not readable goes to the
// poison table (webhook_poison) instead. Only deliveries of events the
// fan-out has passed (the consumer's acknowledgement floor at start, then
// each event fanned out) are sent, so an event fanned out late
// (redelivered after a crash) still goes before its token's later events.
// The dispatcher creates the consumer when it first sees an endpoint
// registered, starting right after the stream sequence the endpoint was
// registered at: a deployment without endpoints spends nothing on fan-out.
// The fan-out costs one database round trip per event; the sending, which
// waits for receivers, runs in parallel.
//
// # Delivery
//
// Deliveries live in PostgreSQL (webhook_deliveries, each attempt in
// webhook_attempts). For each endpoint and token (or owner, for owner-wide
// events) only the pending delivery with the lowest stream sequence is
// attempted, so a token's events arrive in stream order and a failing one
// holds its successors back; deliveries of different tokens or endpoints
// go in parallel (Config.Concurrency at once), and their attempts are
// recorded in batches, one statement for those that finished meanwhile. An attempt is a POST of the JSON Payload with
// the headers webhook-id (the event id: the same on every attempt and
// after a restart), webhook-timestamp (Unix seconds) and
// webhook-signature ("v1," and the base64 HMAC-SHA256, keyed with the
// endpoint's secret, of "<webhook-id>.<webhook-timestamp>.<body>"). A 2xx
// answer delivers; anything else (or no answer within Config.Timeout) is
// retried after Config.BackoffInitial, doubling up to Config.BackoffMax,
// until Config.RetryPeriod has passed since the first attempt: the
// delivery is then failed and the endpoint disabled, with the reason. An
// attempt is recorded after its answer: a dispatcher killed meanwhile
// makes it again after the restart, with the same webhook-id.
//
// # Targets
//
// Unless Config.AllowPrivateTargets, deliveries never go to loopback,
// private, link-local, multicast or otherwise reserved addresses: a URL
// naming one is refused at registration, and the address a host name
// resolves to is checked when each connection is made (so a name that
// resolves to an internal address is refused too). Redirects are not
// followed, proxies not used, and at most Config.MaxResponseBytes of an
// answer is read.
//
// # Secrets
//
// A signing secret ("whsec_" and the base64 of 32 random bytes) is shown
// once, when the endpoint is registered. It is stored as it is in
// PostgreSQL, because signing needs the key itself (a hash would not
// do); it is never logged nor shown again.
package webhooks
