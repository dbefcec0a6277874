package validator_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// history appends a random token history to an env, through the domain's
// commands, keeping every secret.
type history struct {
	e       *env
	rng     *rand.Rand
	now     time.Time
	owners  []domain.OwnerID
	tokens  []*domain.Token
	secrets map[domain.TokenID]string
}

func newHistory(t *testing.T, e *env, now time.Time) *history {
	t.Helper()
	return &history{
		e:       e,
		rng:     rand.New(rand.NewPCG(1, 2)),
		now:     now,
		owners:  []domain.OwnerID{"alice", "bob", "carol", "dave", "erin"},
		secrets: map[domain.TokenID]string{},
	}
}

// run appends n random commands' events, each a millisecond after the
// last.
func (h *history) run(t *testing.T, n int) {
	t.Helper()
	for range n {
		h.now = h.now.Add(time.Millisecond)
		owner := h.owners[h.rng.IntN(len(h.owners))]
		switch r := h.rng.IntN(10); {
		case r < 5 || len(h.tokens) == 0:
			secret, tok := h.e.issue(t, owner, h.now, func(req *domain.IssueRequest) {
				switch h.rng.IntN(4) {
				case 0:
					req.ExpiresIn = time.Hour
				case 1:
					req.ExpiresIn = 2 * time.Hour
				case 2:
					req.NeverExpires = true
				default:
					req.Kind = domain.KindSession
				}
			})
			h.tokens = append(h.tokens, tok)
			h.secrets[tok.ID()] = secret
		case r < 7:
			tok := h.tokens[h.rng.IntN(len(h.tokens))]
			if _, revoked := tok.RevokedAt(); revoked {
				continue
			}
			h.e.setExpiry(t, tok, h.now.Add(time.Duration(30+h.rng.IntN(150))*time.Minute), h.now)
		case r < 9:
			tok := h.tokens[h.rng.IntN(len(h.tokens))]
			if _, revoked := tok.RevokedAt(); revoked {
				continue
			}
			h.e.revoke(t, tok, h.now)
		default:
			var until *time.Time
			if h.rng.IntN(2) == 0 {
				u := h.now.Add(5 * time.Millisecond)
				until = &u
			}
			h.e.revokeOwner(t, owner, until, h.now)
		}
	}
}
