package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// WebhooksActor is the actor recorded on webhook endpoint events.
const WebhooksActor = "system:webhooks"

// RecordWebhookDisabled records on owner's history that webhook endpoint
// d.Endpoint was disabled (domain.Owner.RecordWebhookDisabled), if it is
// not recorded yet, and reports whether this call recorded it. The event
// id is derived from the endpoint and the owner's history is checked
// before appending, so any number of callers and retries record it once.
func (s *Service) RecordWebhookDisabled(ctx context.Context, owner domain.OwnerID, d domain.OwnerWebhookDisabled) (bool, error) {
	if err := domain.ValidateOwner(owner); err != nil {
		return false, err
	}
	m := s.meta(WebhooksActor, "")
	var recorded bool
	err := s.retry(ctx, "webhook_disabled", func(now time.Time) error {
		recorded = false
		o, err := s.loadOwner(ctx, owner)
		if err != nil {
			return err
		}
		version := o.Version()
		ok, err := o.RecordWebhookDisabled(d, m, now)
		if err != nil || !ok {
			return err
		}
		start := time.Now()
		stored, err := s.cfg.Store.Append(ctx, eventstore.ExpectOwner(owner, version), o.Changes()...)
		s.observeAppend("webhook_disabled", start, err)
		if errors.Is(err, eventstore.ErrEventIDReused) {
			// Another writer stored it a moment ago, within the store's
			// duplicate window.
			return nil
		}
		if err != nil {
			return storeErr(err)
		}
		s.observe(stored)
		recorded = true
		return nil
	})
	return recorded, err
}
