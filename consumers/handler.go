package consumers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

var (
	// errHalt marks a failure the projector halts on: the Retry middleware
	// does not retry it, the router hands the event back with a delay, and
	// it is delivered again and again until resolved.
	errHalt = errors.New("halted")
	// errGap: the consumer delivered an event although an earlier one was
	// never applied.
	errGap = errors.New("sequence gap")
	// errNoMetadata: a delivery without JetStream metadata.
	errNoMetadata = errors.New("delivery without stream metadata")
)

// metadataAttempted marks a message the handler has been tried on once.
const metadataAttempted = "tl_attempted"

// delivery is what the handler knows of the message it got.
type delivery struct {
	seq     uint64
	subject string
	msgID   string
	reply   string
}

func parseDelivery(msg *message.Message) (delivery, error) {
	d := delivery{
		subject: msg.Metadata.Get(MetadataSubject),
		msgID:   msg.Metadata.Get(MetadataMsgID),
		reply:   msg.Metadata.Get(MetadataReply),
	}
	if reason := msg.Metadata.Get(MetadataError); reason != "" {
		return d, fmt.Errorf("%w: %s", errNoMetadata, reason)
	}
	seq, err := strconv.ParseUint(msg.Metadata.Get(MetadataStreamSequence), 10, 64)
	if err != nil || seq == 0 {
		return d, fmt.Errorf("%w: stream sequence %q", errNoMetadata, msg.Metadata.Get(MetadataStreamSequence))
	}
	d.seq = seq
	return d, nil
}

// handle applies one delivered event: decode it with the store's registry,
// then apply it and advance the checkpoint in one transaction. A nil error
// makes the router acknowledge the event.
func (p *LifecycleProjector) handle(msg *message.Message) error {
	d, err := parseDelivery(msg)
	if err != nil {
		return p.halted(d, err)
	}
	if msg.Context().Err() != nil {
		return msg.Context().Err()
	}
	ctx, cancel := context.WithTimeout(msg.Context(), p.attemptTimeout())
	defer cancel()
	if err := p.checkGap(ctx, d); err != nil {
		return err
	}
	e, err := p.store.DecodeRaw(&jetstream.RawStreamMsg{Subject: d.subject, Sequence: d.seq, Data: msg.Payload})
	if err != nil {
		return p.undecodable(ctx, d, err)
	}
	if _, err := p.proj.ApplyBatch(ctx, p.cfg.Name, []domain.Envelope{e}); err != nil {
		if permanent(err) {
			return p.halted(d, err)
		}
		return p.failed(d, err)
	}
	p.done(d)
	return nil
}

// checkGap refuses an event beyond the next one to apply. With one event in
// flight and acknowledgements only after a commit this does not happen,
// except when another projector of the same name applied events meanwhile,
// which a fresh read of the checkpoint shows.
func (p *LifecycleProjector) checkGap(ctx context.Context, d delivery) error {
	p.mu.Lock()
	known := p.known
	p.mu.Unlock()
	if d.seq <= known+1 {
		return nil
	}
	cp, err := p.proj.Checkpoint(ctx, p.cfg.Name)
	if err != nil {
		return p.failed(d, fmt.Errorf("read checkpoint: %w", err))
	}
	p.mu.Lock()
	p.known = max(p.known, cp)
	p.mu.Unlock()
	if d.seq <= cp+1 {
		return nil
	}
	return p.halted(d, fmt.Errorf("%w: event %d delivered while the checkpoint is %d, so events %d..%d were acknowledged without being applied; restart the projector, which repositions its consumer at the checkpoint",
		errGap, d.seq, cp, cp+1, d.seq-1))
}

// undecodable handles an event the registry cannot decode: acknowledged if
// the checkpoint is past it already, skipped if the operator named it in
// SkipSequence, otherwise the projector halts at it.
func (p *LifecycleProjector) undecodable(ctx context.Context, d delivery, cause error) error {
	cp, err := p.proj.Checkpoint(ctx, p.cfg.Name)
	if err != nil {
		return p.failed(d, fmt.Errorf("read checkpoint: %w", err))
	}
	if d.seq <= cp {
		p.log.Warn("undecodable event is at or below the checkpoint (applied by another binary or skipped before); acknowledging it",
			"sequence", d.seq, "subject", d.subject, "checkpoint", cp, "reason", cause.Error())
		p.done(d)
		return nil
	}
	if p.cfg.SkipSequence != d.seq {
		return p.halted(d, cause)
	}
	// A placeholder event at the skipped sequence belongs to no aggregate:
	// ApplyBatch changes no row for it but advances the checkpoint past it,
	// in one transaction, so the skip is as durable as an applied event.
	if _, err := p.proj.ApplyBatch(ctx, p.cfg.Name, []domain.Envelope{{Sequence: d.seq}}); err != nil {
		return p.failed(d, fmt.Errorf("record the skip of event %d: %w", d.seq, err))
	}
	p.log.Error("SKIPPED an undecodable event by operator request (skip sequence): the projection will never contain it",
		"sequence", d.seq, "subject", d.subject, "msg_id", d.msgID, "reason", cause.Error())
	p.mu.Lock()
	p.skipped = &Halt{Sequence: d.seq, Subject: d.subject, Reason: cause.Error(), Since: time.Now().UTC()}
	p.mu.Unlock()
	p.done(d)
	return nil
}

// halted records that the projector stops at d for cause, logs it at error
// level the first time, and returns an error the Retry middleware does not
// retry, so that the router hands the event back.
func (p *LifecycleProjector) halted(d delivery, cause error) error {
	reason := cause.Error()
	p.mu.Lock()
	fresh := p.halt == nil || p.halt.Sequence != d.seq || p.halt.Reason != reason
	if fresh {
		p.halt = &Halt{Sequence: d.seq, Subject: d.subject, Reason: reason, Since: time.Now().UTC()}
		p.haltErr = cause
	}
	p.lastErr = reason
	p.mu.Unlock()
	if fresh {
		attrs := []any{"sequence", d.seq, "subject", d.subject, "msg_id", d.msgID, "reason", reason}
		if p.cfg.SkipSequence != 0 {
			attrs = append(attrs, "skip_sequence", p.cfg.SkipSequence)
		}
		p.log.Error("lifecycle projection HALTED: the event cannot be applied; it stays unacknowledged and nothing after it is applied until it is resolved (see the consumers package documentation)", attrs...)
	} else {
		p.log.Debug("lifecycle projection still halted", "sequence", d.seq)
	}
	return fmt.Errorf("%w at sequence %d: %w", errHalt, d.seq, cause)
}

// failed records a transient failure; the Retry middleware tries again.
// A failure because the projector is stopping (the message's context was
// canceled) is returned as it is, unrecorded; neither the Retry
// middleware nor the router retries or logs it.
func (p *LifecycleProjector) failed(d delivery, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	p.setLastError(err)
	p.log.Warn("applying an event failed; retrying", "sequence", d.seq, "error", err)
	return fmt.Errorf("event %d: %w", d.seq, err)
}

// done records that d is applied, skipped, or known to be behind the
// checkpoint; a halt at or before it is over.
func (p *LifecycleProjector) done(d delivery) {
	p.mu.Lock()
	p.known = max(p.known, d.seq)
	resolved := p.halt != nil && d.seq >= p.halt.Sequence
	if resolved {
		p.halt, p.haltErr = nil, nil
	}
	p.lastErr = ""
	p.mu.Unlock()
	if resolved {
		p.log.Info("lifecycle projection resumed", "sequence", d.seq)
	}
}

// attemptMiddleware runs around every attempt of the handler, inside the
// Retry middleware: from the second attempt on it tells the server the
// event is still being worked on, which restarts the server's AckWait, and
// it turns a recovered panic into a halt.
func (p *LifecycleProjector) attemptMiddleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if msg.Metadata.Get(metadataAttempted) != "" {
			p.progress(msg.Metadata.Get(MetadataReply))
		} else {
			msg.Metadata.Set(metadataAttempted, "1")
		}
		out, err := h(msg)
		var panicked middleware.RecoveredPanicError
		if err != nil && errors.As(err, &panicked) {
			d, _ := parseDelivery(msg)
			p.log.Error("lifecycle projector panicked", "sequence", d.seq, "panic", fmt.Sprint(panicked.V), "stack", panicked.Stacktrace)
			return out, p.halted(d, fmt.Errorf("handler panicked: %v", panicked.V))
		}
		return out, err
	}
}

// progress sends "+WPI", the JetStream acknowledgement protocol's "work in
// progress" (jetstream.Msg.InProgress sends the same), for the delivery
// whose acknowledgement subject is reply.
func (p *LifecycleProjector) progress(reply string) {
	if reply == "" {
		return
	}
	if err := p.conn.Publish(reply, []byte("+WPI")); err != nil {
		p.log.Debug("progress signal", "error", err)
	}
}

// permanent reports whether applying an event failed in a way retrying
// cannot fix: the event breaks a constraint of the read model or holds a
// value PostgreSQL refuses.
func permanent(err error) bool {
	if errors.Is(err, projections.ErrOutOfOrder) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) >= 2 {
		switch pgErr.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return true
		}
	}
	return false
}
