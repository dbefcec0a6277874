package webhooks_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/webhooks"
)

// TestDisablingIsAnEvent: an endpoint of every owner whose deliveries
// keep failing is disabled with an owner.webhook_disabled event on the
// history of the owner whose event could not be delivered, naming the
// endpoint, the event and what failed; a second dispatcher recording the
// same disabling adds nothing.
func TestDisablingIsAnEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := newReceiver(t)
	r.answer = func(arrival, int) (int, time.Duration) { return http.StatusServiceUnavailable, 0 }
	ep, secret := h.register(r.srv.URL, true)
	r.setSecret(secret)
	cfg := testConfig()
	cfg.RetryPeriod = time.Second
	cfg.Disabled = h.svc
	h.startDispatcher(cfg)
	iss, err := h.svc.Issue(context.Background(), admin, domain.IssueRequest{Owner: "carol", ExpiresIn: time.Hour}, "")
	if err != nil {
		t.Fatal(err)
	}
	disabled := func() []domain.Envelope {
		events, err := h.store.LoadOwner(context.Background(), "carol")
		if err != nil {
			t.Fatal(err)
		}
		var out []domain.Envelope
		for _, e := range events {
			if e.Type == domain.TypeOwnerWebhookDisabled {
				out = append(out, e)
			}
		}
		return out
	}
	stacktest.Eventually(t, 30*time.Second, func() bool { return len(disabled()) > 0 }, "the disabling recorded in carol's history")
	m := webhooks.NewManager(h.pool, h.store, true, nil)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		e, err := m.Get(context.Background(), admin, ep.ID)
		return err == nil && !e.DisabledAt.IsZero()
	}, "the endpoint disabled")

	events := disabled()
	if len(events) != 1 {
		t.Fatalf("%d owner.webhook_disabled events, want 1", len(events))
	}
	e := events[0]
	d, ok := domain.PayloadAs[domain.OwnerWebhookDisabled](e.Data)
	if !ok || d.Endpoint != ep.ID || d.URL != ep.URL || d.Reason == "" || e.Actor != ledger.WebhooksActor || e.ID != domain.WebhookDisabledID(ep.ID) {
		t.Fatalf("event %+v, payload %+v", e, d)
	}
	issued, err := h.store.LoadToken(context.Background(), iss.Token.ID())
	if err != nil || len(issued) == 0 || d.Event != issued[0].ID.String() {
		t.Fatalf("the event names %s, not the issue %v (%v)", d.Event, issued, err)
	}

	// Another writer (a second dispatcher, a retry) records nothing more.
	again, err := h.svc.RecordWebhookDisabled(context.Background(), "carol", d)
	if err != nil || again {
		t.Fatalf("second record = %v, %v; want false, nil", again, err)
	}
	if n := len(disabled()); n != 1 {
		t.Fatalf("%d owner.webhook_disabled events after a second record, want 1", n)
	}
}
