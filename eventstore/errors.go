package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

var (
	// ErrConflict: an append's expectation failed because the aggregate
	// changed since the caller read it. Nothing of the append was stored.
	// Reload, decide again, and append with the new sequence.
	ErrConflict = errors.New("concurrent modification")
	// ErrOutcomeUnknown: the store did not answer an append within its
	// attempts, and the events were not found afterwards; they may still
	// be stored later. Retrying with the same events (same ids) within the
	// duplicate window is safe: an event is never stored twice.
	ErrOutcomeUnknown = errors.New("append outcome unknown")
	// ErrEventIDReused: an appended event id is already stored with
	// different content or outside the expected place, so the append was
	// refused. Event ids must be fresh for every new event.
	ErrEventIDReused = errors.New("event id already used")
)

// Server error codes the store reacts to. A failed expectation comes as
// 10071, with the sequence found. A replicated stream's leader answers
// 10164 instead, without a sequence, when it cannot check an expectation
// yet because another append expecting the same subject is in process:
// nothing is stored, and the same append sent again gets the verdict.
const (
	codeWrongLastSequence         = jetstream.JSErrCodeStreamWrongLastSequence         // 10071
	codeWrongLastSequenceConstant = jetstream.JSErrCodeStreamWrongLastSequenceConstant // 10164
	codeBatchDuplicate            = jetstreamext.JSErrCodeBatchPublishDuplicateMsgID   // 10201
	codeNoSuitablePeers           = jetstream.ErrorCode(10005)
)

// errRetryable marks an error the caller has judged worth retrying.
var errRetryable = errors.New("retryable")

// DecodeError reports a stored message that is not a valid event. Reads
// stop at it rather than skip it: a projection must not silently miss an
// event.
type DecodeError struct {
	// Stream is the stream holding the message.
	Stream string
	// Sequence is the message's stream sequence.
	Sequence uint64
	// Subject is the subject it was stored on.
	Subject string
	// Err says why it is not valid; it wraps domain.ErrCorruptEvent or
	// domain.ErrUnknownEventType.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s sequence %d (subject %q): %v", e.Stream, e.Sequence, e.Subject, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, domain.ErrCorruptEvent)
// works.
func (e *DecodeError) Unwrap() error { return e.Err }

// apiErrorCode returns the JetStream API error code in err's chain, or 0.
func apiErrorCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}

// isConflict reports whether err is a failed expectation.
func isConflict(err error) bool {
	return apiErrorCode(err) == codeWrongLastSequence
}

// isBusy reports whether err says an expectation could not be checked yet
// because another append expecting the same subject is in process.
func isBusy(err error) bool {
	return apiErrorCode(err) == codeWrongLastSequenceConstant
}

// isTransient reports whether the request may be repeated as is: no answer
// in time (the outcome is unknown), nobody listening (a leader election),
// or the server saying it is temporarily unable to serve.
func isTransient(err error) bool {
	switch {
	case errors.Is(err, errRetryable),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected):
		return true
	}
	// 503: no leader or cluster unavailable; 429: too many atomic batches
	// in flight. Neither stored anything.
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.Code == 429)
}
