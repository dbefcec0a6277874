package validator

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tokenledger/tokenledger/domain"
)

// The in-memory state is built for the read path: Validate takes no lock.
//
// Tokens live in entries, allocated in fixed pages that never move, and
// are found through an open-addressing index of entry numbers. Everything
// an entry holds is plain data (no pointer), so the garbage collector
// never scans the pages. Owners and scope sets are interned: an entry
// stores their small numbers.
//
// One writer at a time (the tail, a store lookup, the snapshot load)
// changes the state, under state.mu. Readers synchronise with it through
// atomics only: an entry's immutable fields are written before its number
// is stored in the index, and the index, the page list and the intern
// tables are replaced by atomic pointer swaps, so a reader that finds an
// entry sees it complete. The fields that change after insertion
// (expiry, revoked, usage counters) are atomics themselves.

// entry is one token: 104 bytes.
type entry struct {
	id   domain.TokenID
	hash domain.SecretHash
	// created is the time of the token.issued event, in Unix
	// microseconds, the precision of event times.
	created int64
	// issuedSeq is the stream sequence of the token.issued event.
	issuedSeq uint64
	// expires is the expiry in Unix microseconds; neverExpires when none.
	expires atomic.Int64
	// usedFirst, usedLast and uses count the uses since the last flush.
	usedFirst atomic.Int64
	usedLast  atomic.Int64
	owner     uint32
	scopes    uint32
	uses      atomic.Uint32
	flags     atomic.Uint32
}

const (
	flagRevoked uint32 = 1 << iota
	flagSession
	// flagRotated: the token was rotated; once expired, presenting its
	// secret is a reuse of a rotated-out secret.
	flagRotated
	// flagReuseReported: such a reuse was queued for the handler.
	flagReuseReported
)

const (
	// neverExpires is the expiry of a token that does not expire: no
	// instant is at or after it.
	neverExpires = math.MaxInt64
	// noUntil is the "until" of an owner without one: no token was
	// created before it.
	noUntil = math.MinInt64
)

const (
	pageBits = 10
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

type page [pageSize]entry

// owner is one interned owner: its id and its latest revocation.
type owner struct {
	id domain.OwnerID
	// watermark is the stream sequence of the latest owner-wide
	// revocation: tokens issued at a lower sequence are revoked. 0: none.
	watermark atomic.Uint64
	// until is the latest "no tokens created before" instant, in Unix
	// microseconds; noUntil when none.
	until atomic.Int64
}

// covers reports whether o's revocations revoke a token created at
// created (Unix µs) and issued at stream sequence issuedSeq, as
// domain.Owner.Covers decides for stored events.
func (o *owner) covers(created int64, issuedSeq uint64) bool {
	return issuedSeq < o.watermark.Load() || created < o.until.Load()
}

// index maps token ids to entry numbers by linear probing. A slot holds
// the entry number plus one; zero is empty. Entries are never removed.
type index struct {
	slots []atomic.Uint32
	shift uint8
	mask  uint64
}

func newIndex(capacity int) *index {
	n := max(uint64(1)<<bits.Len64(uint64(capacity)-1), 1024)
	return &index{
		slots: make([]atomic.Uint32, n),
		shift: uint8(64 - bits.TrailingZeros64(n)),
		mask:  n - 1,
	}
}

// maxLoad is the fraction of slots an index may fill before it grows.
const maxLoadNum, maxLoadDen = 7, 10

// slotOf is the home slot of id. The random part of a ULID is random
// across processes but only incremented within a millisecond of one
// process, so both halves are mixed.
func (ix *index) slotOf(id *domain.TokenID) uint64 {
	lo := binary.LittleEndian.Uint64(id[0:8])
	hi := binary.LittleEndian.Uint64(id[8:16])
	h := (hi ^ bits.RotateLeft64(lo, 31)) * 0x9E3779B97F4A7C15
	return h >> ix.shift
}

// state is the validator's in-memory projection.
type state struct {
	mu sync.Mutex // serialises writers

	idx      atomic.Pointer[index]
	pages    atomic.Pointer[[]*page]
	n        atomic.Uint32 // entries in use
	owners   atomic.Pointer[[]*owner]
	scopeSet atomic.Pointer[[][]string]

	// Writer-only interning tables.
	ownerNum map[domain.OwnerID]uint32
	scopeNum map[string]uint32

	// Writer-only rotation families: members holds, by family, the entry
	// numbers of the tokens whose token.issued names it (the family's first
	// token is found by its id), so that tokens without a family cost
	// nothing; revokedFamilies holds, by family, the stream sequence of its
	// latest revocation (owner.family_revoked): members issued at a lower
	// sequence are revoked.
	members         map[domain.TokenID][]uint32
	revokedFamilies map[domain.TokenID]uint64
}

func newState() *state {
	s := &state{
		ownerNum:        make(map[domain.OwnerID]uint32),
		scopeNum:        make(map[string]uint32),
		members:         make(map[domain.TokenID][]uint32),
		revokedFamilies: make(map[domain.TokenID]uint64),
	}
	s.idx.Store(newIndex(1024))
	s.pages.Store(&[]*page{})
	s.owners.Store(&[]*owner{})
	s.scopeSet.Store(&[][]string{})
	return s
}

// find returns the entry of id and its number, or nil. Safe for
// concurrent use with a writer; it takes no lock and does not allocate.
func (s *state) find(id *domain.TokenID) (*entry, uint32) {
	ix := s.idx.Load()
	pages := *s.pages.Load()
	for i := ix.slotOf(id); ; i = (i + 1) & ix.mask {
		v := ix.slots[i].Load()
		if v == 0 {
			return nil, 0
		}
		n := v - 1
		if int(n>>pageBits) >= len(pages) {
			// Published after the page list was read.
			pages = *s.pages.Load()
		}
		e := &pages[n>>pageBits][n&pageMask]
		if e.id == *id {
			return e, n
		}
	}
}

// entryAt returns entry number n, which must have been published.
func (s *state) entryAt(n uint32) *entry {
	return &(*s.pages.Load())[n>>pageBits][n&pageMask]
}

// ownerAt returns owner number n, which must have been published.
func (s *state) ownerAt(n uint32) *owner { return (*s.owners.Load())[n] }

// scopesAt returns scope set number n, which must have been published.
func (s *state) scopesAt(n uint32) []string { return (*s.scopeSet.Load())[n] }

// newToken describes a token to insert.
type newToken struct {
	id        domain.TokenID
	hash      domain.SecretHash
	owner     domain.OwnerID
	scopes    []string
	session   bool
	created   int64
	expires   int64
	issuedSeq uint64
	revoked   bool
	rotated   bool
	// family is the rotation family token.issued names; zero for a token
	// not issued by a rotation (the first of its own family).
	family domain.TokenID
}

// insert adds a token that is not in the state yet and returns its entry.
// The caller holds s.mu.
func (s *state) insert(t newToken) *entry {
	n := s.n.Load()
	pages := *s.pages.Load()
	if int(n>>pageBits) == len(pages) {
		grown := append(pages, new(page))
		s.pages.Store(&grown)
		pages = grown
	}
	e := &pages[n>>pageBits][n&pageMask]
	e.id = t.id
	e.hash = t.hash
	e.created = t.created
	e.issuedSeq = t.issuedSeq
	e.expires.Store(t.expires)
	e.owner = s.internOwner(t.owner)
	e.scopes = s.internScopes(t.scopes)
	var flags uint32
	if t.session {
		flags |= flagSession
	}
	if t.revoked {
		flags |= flagRevoked
	}
	if t.rotated {
		flags |= flagRotated
	}
	family := t.family
	if family.IsZero() {
		family = t.id
	} else {
		s.members[family] = append(s.members[family], n)
	}
	if seq, ok := s.revokedFamilies[family]; ok && t.issuedSeq < seq {
		flags |= flagRevoked
	}
	e.flags.Store(flags)

	ix := s.idx.Load()
	if uint64(n+1)*maxLoadDen > uint64(len(ix.slots))*maxLoadNum {
		ix = s.grow(ix, pages, n)
	}
	ix.put(&t.id, n, pages)
	s.n.Store(n + 1)
	return e
}

// put stores entry number n under id. Only a writer calls it.
func (ix *index) put(id *domain.TokenID, n uint32, pages []*page) {
	for i := ix.slotOf(id); ; i = (i + 1) & ix.mask {
		if ix.slots[i].Load() == 0 {
			ix.slots[i].Store(n + 1)
			return
		}
	}
}

// grow replaces the index with one twice its size holding the first n
// entries. Readers still probing the old index find everything that was
// in it, since entries never move.
func (s *state) grow(old *index, pages []*page, n uint32) *index {
	ix := newIndex(2 * len(old.slots))
	for k := range n {
		ix.put(&pages[k>>pageBits][k&pageMask].id, k, pages)
	}
	s.idx.Store(ix)
	return ix
}

// owner returns the interned owner id, adding it if new. The caller holds
// s.mu.
func (s *state) owner(id domain.OwnerID) *owner {
	return s.ownerAt(s.internOwner(id))
}

func (s *state) internOwner(id domain.OwnerID) uint32 {
	if n, ok := s.ownerNum[id]; ok {
		return n
	}
	o := &owner{id: id}
	o.until.Store(noUntil)
	// Appending may write into the spare capacity of the array current
	// readers see, but only past the length their slice header shows.
	grown := append(*s.owners.Load(), o)
	s.owners.Store(&grown)
	n := uint32(len(grown) - 1)
	s.ownerNum[id] = n
	return n
}

// internScopes returns the number of the scope set, adding it if new.
// The interned copy is sorted (events carry sorted scopes already; this
// keeps Principal.HasScope right whatever a row holds) and clipped, so
// appending to a Principal's Scopes copies instead of writing into the
// shared array.
func (s *state) internScopes(scopes []string) uint32 {
	if !slices.IsSorted(scopes) {
		scopes = slices.Sorted(slices.Values(scopes))
	}
	key := strings.Join(scopes, " ")
	if n, ok := s.scopeNum[key]; ok {
		return n
	}
	grown := append(*s.scopeSet.Load(), append(make([]string, 0, len(scopes)), scopes...))
	s.scopeSet.Store(&grown)
	n := uint32(len(grown) - 1)
	s.scopeNum[key] = n
	return n
}

// revokeFamily applies a revocation of family, of owner, stored at seq:
// every member of the owner issued before seq is revoked, now and when it
// is inserted later. Applying it again, or an earlier one after it,
// changes nothing. The caller holds s.mu.
func (s *state) revokeFamily(owner domain.OwnerID, family domain.TokenID, seq uint64) {
	if seq > s.revokedFamilies[family] {
		s.revokedFamilies[family] = seq
	}
	num, ok := s.ownerNum[owner]
	if !ok {
		return
	}
	revoke := func(e *entry) {
		if e.owner == num && e.issuedSeq < seq {
			e.flags.Or(flagRevoked)
		}
	}
	if e, _ := s.find(&family); e != nil {
		revoke(e)
	}
	for _, n := range s.members[family] {
		if e := s.entryAt(n); e.id != family {
			revoke(e)
		}
	}
}

// tokens and ownersLen report the state's size.
func (s *state) tokens() int    { return int(s.n.Load()) }
func (s *state) ownersLen() int { return len(*s.owners.Load()) }
