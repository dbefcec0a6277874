package export

import (
	"context"
	"fmt"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// DefaultOwnerCache is how many tokens' owners an export keeps in memory
// by default: about 9 MB (BenchmarkOwnerCache: 92 bytes per entry with
// owners of 20 bytes). A token whose owner is not in the cache costs one
// direct get of its token.issued event.
const DefaultOwnerCache = 100_000

// ownerCache is a least-recently-used map from token to owner with a fixed
// capacity. Its entries live in one slice linked by index, so that it
// allocates nothing per entry once full.
type ownerCache struct {
	idx  map[domain.TokenID]int32
	ents []ownerEntry
	// head is the most recently used entry, tail the least; -1 when empty.
	head, tail int32
	cap        int
}

type ownerEntry struct {
	id         domain.TokenID
	owner      domain.OwnerID
	prev, next int32
}

func newOwnerCache(capacity int) *ownerCache {
	capacity = max(capacity, 1)
	return &ownerCache{
		idx:  make(map[domain.TokenID]int32, capacity),
		ents: make([]ownerEntry, 0, capacity),
		head: -1, tail: -1, cap: capacity,
	}
}

// get returns id's owner and makes it the most recently used.
func (c *ownerCache) get(id domain.TokenID) (domain.OwnerID, bool) {
	i, ok := c.idx[id]
	if !ok {
		return "", false
	}
	c.moveToFront(i)
	return c.ents[i].owner, true
}

// put records id's owner, evicting the least recently used entry when the
// cache is full.
func (c *ownerCache) put(id domain.TokenID, owner domain.OwnerID) {
	if i, ok := c.idx[id]; ok {
		c.ents[i].owner = owner
		c.moveToFront(i)
		return
	}
	var i int32
	if len(c.ents) < c.cap {
		i = int32(len(c.ents))
		c.ents = append(c.ents, ownerEntry{prev: -1, next: -1})
	} else {
		i = c.tail
		c.unlink(i)
		delete(c.idx, c.ents[i].id)
	}
	c.ents[i].id, c.ents[i].owner = id, owner
	c.idx[id] = i
	c.pushFront(i)
}

func (c *ownerCache) moveToFront(i int32) {
	if c.head == i {
		return
	}
	c.unlink(i)
	c.pushFront(i)
}

func (c *ownerCache) unlink(i int32) {
	e := &c.ents[i]
	if e.prev >= 0 {
		c.ents[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next >= 0 {
		c.ents[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (c *ownerCache) pushFront(i int32) {
	e := &c.ents[i]
	e.prev, e.next = -1, c.head
	if c.head >= 0 {
		c.ents[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}

// ownerResolver finds the owner of an event: owner events and token.issued
// carry it; the other token events are resolved from the cache, filled
// from the token.issued events as they stream by, or else from the store.
type ownerResolver struct {
	store *eventstore.Store
	cache *ownerCache
	stats OwnerStats
}

// OwnerStats counts how an export found the owners of token events that
// do not carry one.
type OwnerStats struct {
	// Hits were found in the cache.
	Hits uint64
	// Loads were read from the store (one direct get each).
	Loads uint64
}

func newOwnerResolver(store *eventstore.Store, capacity int) *ownerResolver {
	if capacity <= 0 {
		capacity = DefaultOwnerCache
	}
	return &ownerResolver{store: store, cache: newOwnerCache(capacity)}
}

// observe remembers the owner of a token.issued event, whether or not the
// event is exported.
func (o *ownerResolver) observe(e *domain.Envelope) {
	if d, ok := e.Data.(domain.TokenIssued); ok {
		if id, ok := e.TokenID(); ok {
			o.cache.put(id, d.Owner)
		}
	}
}

// owner returns the owner of e's token or of the owner event e; "" for a
// token whose token.issued event is not in the store.
func (o *ownerResolver) owner(ctx context.Context, e *domain.Envelope) (domain.OwnerID, error) {
	switch d := e.Data.(type) {
	case domain.TokenIssued:
		return d.Owner, nil
	case domain.OwnerTokensRevoked:
		return d.Owner, nil
	case domain.OwnerFamilyRevoked:
		return d.Owner, nil
	}
	id, ok := e.TokenID()
	if !ok {
		return domain.OwnerID(e.AggregateID), nil
	}
	return o.tokenOwner(ctx, id)
}

// tokenOwner returns the owner of token id; "" for a token whose
// token.issued event is not in the store.
func (o *ownerResolver) tokenOwner(ctx context.Context, id domain.TokenID) (domain.OwnerID, error) {
	if owner, ok := o.cache.get(id); ok {
		o.stats.Hits++
		return owner, nil
	}
	o.stats.Loads++
	owner, err := o.load(ctx, id)
	if err != nil {
		return "", fmt.Errorf("owner of token %s: %w", id, err)
	}
	o.cache.put(id, owner)
	return owner, nil
}

// load reads the token.issued event of id (Store.LoadIssued).
func (o *ownerResolver) load(ctx context.Context, id domain.TokenID) (domain.OwnerID, error) {
	e, ok, err := o.store.LoadIssued(ctx, id)
	if err != nil || !ok {
		return "", err
	}
	return e.Data.(domain.TokenIssued).Owner, nil
}
