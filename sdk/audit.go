package sdk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// StateAt is the answer of GET /v1/state: every token as it was at an
// instant, replayed from the event stream.
type StateAt struct {
	// At is the instant asked for.
	At time.Time `json:"at"`
	// Sequence is the lifecycle stream sequence of the last event at or
	// before At; zero when there was none.
	Sequence uint64 `json:"sequence"`
	// Items are the tokens issued at or before At, in id order, each as it
	// was at At: Status, expiry, revocation and usage as known then.
	Items []Token `json:"items"`
}

// OwnerEvents returns everything recorded of an owner: GET
// /v1/owners/{owner}/events. The answer holds the owner's owner-wide events
// and every event of every token of the owner, in stream order. The owner
// is one path segment, escaped (see RevokeOwner). The Client's token needs
// ledger:admin or must be a token of owner.
func (c *Client) OwnerEvents(ctx context.Context, owner string) (EventList, error) {
	seg, err := segment("owner", owner)
	if err != nil {
		return EventList{}, fmt.Errorf("owner events: %w", err)
	}
	var out EventList
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: "/v1/owners/" + seg + "/events", bearer: c.token}, &out); err != nil {
		return EventList{}, fmt.Errorf("events of owner %q: %w", owner, err)
	}
	return out, nil
}

// StateAt returns every token as it was at instant at, or only owner's
// tokens unless owner is empty: GET /v1/state?at=...&owner=.... The
// Client's token needs ledger:admin. The answer is bounded by
// MaxResponseBytes like every other; narrow a large ledger by owner.
func (c *Client) StateAt(ctx context.Context, at time.Time, owner string) (StateAt, error) {
	if at.IsZero() {
		return StateAt{}, errors.New("state at: no instant")
	}
	q := url.Values{"at": {at.UTC().Format(time.RFC3339Nano)}}
	if owner != "" {
		q.Set("owner", owner)
	}
	var out StateAt
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: "/v1/state", query: q, bearer: c.token}, &out); err != nil {
		return StateAt{}, fmt.Errorf("state at %s: %w", at.UTC().Format(time.RFC3339Nano), err)
	}
	return out, nil
}
