package sdk

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// WebhookRequest registers a webhook endpoint (POST /v1/webhooks).
type WebhookRequest struct {
	// URL receives the deliveries (http or https).
	URL string `json:"url"`
	// Events are the event types wanted (token.issued, token.expiring,
	// token.expired, token.revoked, token.leaked, token.inactive,
	// owner.revoked, family.revoked); empty means all.
	Events []string `json:"events,omitempty"`
	// Owner limits the endpoint to one owner's events. Without it an
	// admin's endpoint receives every owner's, anyone else's their own
	// owner's.
	Owner *string `json:"owner,omitempty"`
}

// Webhook is a registered endpoint. Secret is set only in the answer to
// its registration.
type Webhook struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// Owner is null for an endpoint of every owner.
	Owner     *string   `json:"owner"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// DisabledAt is set when a delivery failed for the whole retry period
	// and the endpoint was disabled; DisabledReason says why.
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	// Secret is the signing secret ("whsec_..."), shown only once.
	Secret string `json:"secret,omitempty"`
}

// WebhookList is the answer of GET /v1/webhooks.
type WebhookList struct {
	Items []Webhook `json:"items"`
}

// WebhookDelivery is one event sent (or being sent) to an endpoint.
type WebhookDelivery struct {
	ID int64 `json:"id"`
	// EventID is the webhook-id header of every attempt.
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	Sequence uint64 `json:"sequence"`
	// Status is pending, delivered or failed.
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	CreatedAt     time.Time  `json:"created_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	DoneAt        *time.Time `json:"done_at"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
}

// WebhookDeliveries is the answer of GET /v1/webhooks/{id}/deliveries,
// newest first; NextBefore, when set, pages on (the before parameter).
type WebhookDeliveries struct {
	Items      []WebhookDelivery `json:"items"`
	NextBefore int64             `json:"next_before,omitempty"`
}

// CreateWebhook registers an endpoint: POST /v1/webhooks. The answer
// holds the signing secret, shown only here.
func (c *Client) CreateWebhook(ctx context.Context, req WebhookRequest) (Webhook, error) {
	var out Webhook
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: "/v1/webhooks", body: req, bearer: c.token}, &out); err != nil {
		return Webhook{}, fmt.Errorf("register webhook: %w", err)
	}
	return out, nil
}

// ListWebhooks lists the endpoints the caller may see: GET /v1/webhooks.
func (c *Client) ListWebhooks(ctx context.Context) (WebhookList, error) {
	var out WebhookList
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: "/v1/webhooks", bearer: c.token}, &out); err != nil {
		return WebhookList{}, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// RemoveWebhook removes an endpoint: DELETE /v1/webhooks/{id}.
func (c *Client) RemoveWebhook(ctx context.Context, id string) error {
	seg, err := segment("webhook id", id)
	if err != nil {
		return fmt.Errorf("remove webhook: %w", err)
	}
	if err := c.doJSON(ctx, call{method: http.MethodDelete, path: "/v1/webhooks/" + seg, bearer: c.token}, nil); err != nil {
		return fmt.Errorf("remove webhook %s: %w", id, err)
	}
	return nil
}

// WebhookDeliveries lists an endpoint's deliveries, newest first: GET
// /v1/webhooks/{id}/deliveries. limit 0 means the server's default; before
// 0 starts from the newest.
func (c *Client) WebhookDeliveries(ctx context.Context, id string, limit int, before int64) (WebhookDeliveries, error) {
	seg, err := segment("webhook id", id)
	if err != nil {
		return WebhookDeliveries{}, fmt.Errorf("webhook deliveries: %w", err)
	}
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	var out WebhookDeliveries
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: "/v1/webhooks/" + seg + "/deliveries", query: q, bearer: c.token}, &out); err != nil {
		return WebhookDeliveries{}, fmt.Errorf("webhook deliveries of %s: %w", id, err)
	}
	return out, nil
}

// SecretScanningReport is one finding of GitHub's secret scanning
// partner program (POST /v1/secret-scanning/github takes an array of
// them).
type SecretScanningReport struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// SecretScanningLabel is the answer for one finding: true_positive for a
// token's secret (revoked now or before), false_positive otherwise.
type SecretScanningLabel struct {
	TokenRaw  string `json:"token_raw"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}
