package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// Client's token needs ledger:admin. Unlike other answers it is not
// bounded by MaxResponseBytes (only each token is): it holds every token
// of the ledger, hundreds of megabytes for millions of tokens. To handle
// the tokens one at a time instead of holding them all, use StateAtEach.
func (c *Client) StateAt(ctx context.Context, at time.Time, owner string) (StateAt, error) {
	var items []Token
	out, err := c.StateAtEach(ctx, at, owner, func(t Token) error {
		items = append(items, t)
		return nil
	})
	if err != nil {
		return StateAt{}, err
	}
	out.Items = items
	if out.Items == nil {
		out.Items = []Token{}
	}
	return out, nil
}

// StateAtEach is StateAt passing the tokens to fn one at a time, in the
// answer's order, as the answer is read; fn's error stops the reading and
// is returned. The result holds the answer's At and Sequence, without
// Items.
func (c *Client) StateAtEach(ctx context.Context, at time.Time, owner string, fn func(Token) error) (StateAt, error) {
	if at.IsZero() {
		return StateAt{}, errors.New("state at: no instant")
	}
	q := url.Values{"at": {at.UTC().Format(time.RFC3339Nano)}}
	if owner != "" {
		q.Set("owner", owner)
	}
	when := at.UTC().Format(time.RFC3339Nano)
	resp, err := c.open(ctx, call{method: http.MethodGet, path: "/v1/state", query: q, bearer: c.token})
	if err != nil {
		return StateAt{}, fmt.Errorf("state at %s: %w", when, err)
	}
	defer closeBody(resp)
	out, err := decodeState(resp.Body, fn)
	if err != nil {
		return StateAt{}, fmt.Errorf("state at %s: decode the answer (%s): %w", when, statusNote(resp.StatusCode, resp.Header), err)
	}
	return out, nil
}

// decodeState reads a StateAt document from r, passing its items to fn
// one at a time; each item may take at most MaxResponseBytes.
func decodeState(r io.Reader, fn func(Token) error) (StateAt, error) {
	lr := &itemLimit{r: r}
	dec := json.NewDecoder(lr)
	var out StateAt
	if err := expectDelim(dec, '{'); err != nil {
		return out, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, err
		}
		key, _ := tok.(string)
		switch key {
		case "at":
			err = dec.Decode(&out.At)
		case "sequence":
			err = dec.Decode(&out.Sequence)
		case "items":
			err = decodeItems(dec, lr, fn)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", key, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return out, err
	}
	return out, nil
}

// decodeItems reads a JSON array of tokens (or null), passing each to fn.
func decodeItems(dec *json.Decoder, lr *itemLimit, fn func(Token) error) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("not an array: %v", tok)
	}
	for dec.More() {
		lr.n = 0
		start := dec.InputOffset()
		var t Token
		if err := dec.Decode(&t); err != nil {
			return err
		}
		if dec.InputOffset()-start > MaxResponseBytes {
			return errItemTooLarge
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// errItemTooLarge fails a streamed answer with an item larger than a
// whole answer may be.
var errItemTooLarge = fmt.Errorf("an item exceeds %d bytes", MaxResponseBytes)

// itemLimit fails a read once more than twice MaxResponseBytes were read
// since n was last reset, so that an oversized item is not read whole
// into memory (the decoder reads ahead, hence the margin).
type itemLimit struct {
	r io.Reader
	n int64
}

func (l *itemLimit) Read(p []byte) (int, error) {
	if l.n > 2*MaxResponseBytes {
		return 0, errItemTooLarge
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}
