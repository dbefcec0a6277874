package validator

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
)

// The in-memory state is built for the read path: Validate takes no lock.
//
// Tokens live in 48-byte entries, allocated in fixed pages that never
// move, and are found through an open-addressing index of entry numbers.
// Every field of an entry is an atomic word and none is a pointer, so the
// garbage collector never scans the pages. An entry holds what the read
// path needs and no more: the id, 128 bits of the secret's hash, one state
// word (expiry to the microsecond, the creation time's microseconds,
// revocation flags) and the numbers of its grant (interned owner, scope
// set and kind) and of its usage cell (only used tokens have one). What
// only the writer needs (stream sequences, families, owner revocations)
// is kept beside, and only for the tokens it concerns.
//
// One writer at a time (the tail, a store lookup, the snapshot load, an
// eviction sweep) changes the state, under state.mu. Readers synchronise
// with it through atomics only: an entry is written before its number is
// stored in the index, and the index, the page lists and the intern
// tables are replaced by atomic pointer swaps, so a reader that finds an
// entry sees it complete.
//
// Entries leave the state (evict.go): the writer replaces their index
// slot by a tombstone and keeps their numbers aside. A number is reused
// only once no reader can hold it: readers find entries through one index
// and keep it reachable until they are done with the entry
// (runtime.KeepAlive), and the numbers evicted while an index was current
// are released by a cleanup (runtime.AddCleanup) that runs once that index
// is garbage, after a newer one without them replaced it.

// entry is one token: 48 bytes.
type entry struct {
	// id is the token id, as two little-endian words.
	id [2]atomic.Uint64
	// hash is the first 128 bits of the secret's hash.
	hash [2]atomic.Uint64
	// state packs the expiry, the creation time's microseconds and the
	// flags; see the state word below. freeState: not a token.
	state atomic.Uint64
	// grant is the number of the token's interned owner, scopes and kind.
	grant atomic.Uint32
	// cell is the number of the token's usage cell plus one; 0: none.
	cell atomic.Uint32
}

// The state word, from the low bits: flagBits flags, subBits for the
// microseconds of the creation time past its millisecond (the id's time),
// and expBits of expiry code. The expiry is kept to the microsecond,
// relative to the millisecond of the id: code 0 is an expiry before it
// (always expired), expNever none, and c an expiry c-1 µs after it. An
// expiry more than 35 years after the token's id is kept as the latest
// one the code holds: a token is then refused early, never late.
const (
	flagRevoked uint64 = 1 << iota
	// flagOwnerRevoked: an owner-wide revocation covers the token.
	flagOwnerRevoked
	// flagRotated: the token was rotated; once expired, presenting its
	// secret is a reuse of a rotated-out secret.
	flagRotated
	// flagReuseReported: such a reuse was queued for the handler.
	flagReuseReported

	flagBits = 4
	subShift = flagBits
	subBits  = 10
	expShift = subShift + subBits
	expBits  = 64 - expShift
	expNever = 1<<expBits - 1
	subMask  = 1<<subBits - 1
	flagMask = 1<<flagBits - 1

	// freeState marks an entry that holds no token: every flag set, and a
	// creation time no token has (its microseconds past the millisecond
	// are below 1000).
	freeState = math.MaxUint64
)

const (
	// neverExpires is the expiry of a token that does not expire: no
	// instant is at or after it.
	neverExpires = math.MaxInt64
	// expiredAlways is the expiry read from code 0: before every instant.
	expiredAlways = math.MinInt64
	// noUntil is the "until" of an owner without one: no token was
	// created before it.
	noUntil = math.MinInt64
)

// idBase is the time of id in Unix microseconds: its ULID millisecond.
func idBase(id *domain.TokenID) int64 { return int64(ulid.ULID(*id).Time()) * 1000 }

// encodeExpiry is the expiry code of exp (Unix µs) for a token whose id
// time is base.
func encodeExpiry(base, exp int64) uint64 {
	switch {
	case exp == neverExpires:
		return expNever
	case exp < base:
		return 0
	case uint64(exp-base) >= expNever-2:
		return expNever - 1
	}
	return uint64(exp-base) + 1
}

// expiryOf decodes the expiry of state word st for a token whose id time
// is base.
func expiryOf(base int64, st uint64) int64 {
	switch c := st >> expShift; c {
	case 0:
		return expiredAlways
	case expNever:
		return neverExpires
	default:
		return base + int64(c) - 1
	}
}

// withExpiry returns st with the expiry code of exp.
func withExpiry(st uint64, base, exp int64) uint64 {
	return st&(1<<expShift-1) | encodeExpiry(base, exp)<<expShift
}

func idWords(id *domain.TokenID) (uint64, uint64) {
	return binary.LittleEndian.Uint64(id[0:8]), binary.LittleEndian.Uint64(id[8:16])
}

func hashWords(h *domain.SecretHash) (uint64, uint64) {
	return binary.LittleEndian.Uint64(h[0:8]), binary.LittleEndian.Uint64(h[8:16])
}

// tokenID returns the entry's id.
func (e *entry) tokenID() domain.TokenID {
	var id domain.TokenID
	binary.LittleEndian.PutUint64(id[0:8], e.id[0].Load())
	binary.LittleEndian.PutUint64(id[8:16], e.id[1].Load())
	return id
}

// hashEqual compares the stored 128 bits with those of h, in constant
// time.
func (e *entry) hashEqual(h *domain.SecretHash) bool {
	lo, hi := hashWords(h)
	return (e.hash[0].Load()^lo)|(e.hash[1].Load()^hi) == 0
}

// live reports whether state word st is a token's.
func live(st uint64) bool { return st != freeState }

// setFlags sets flags f in e's state. Only the writer calls it; readers
// may set flagReuseReported concurrently, hence the loop.
func (e *entry) setFlags(f uint64) {
	for {
		st := e.state.Load()
		if !live(st) || e.state.CompareAndSwap(st, st|f) {
			return
		}
	}
}

const (
	pageBits = 10
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

type page [pageSize]entry

// grant is an interned (owner, scope set, kind): tokens of one owner
// usually share a few.
type grant struct {
	owner, scopes uint32
	// cidrs is the number of the token's interned allowed networks plus
	// one; zero for a token usable from any network.
	cidrs   uint32
	session bool
}

// ownerRevocation is an owner's latest revocations, as domain.Owner.Covers
// decides: tokens issued at a lower stream sequence than watermark, or
// created (Unix µs) before until, are revoked.
type ownerRevocation struct {
	watermark uint64
	until     int64
}

func (r ownerRevocation) covers(created int64, issuedSeq uint64) bool {
	return issuedSeq < r.watermark || created < r.until
}

// index maps token ids to entry numbers by linear probing. A slot holds
// the entry number plus one; zero is empty, tombstone an evicted entry.
// Its size need not be a power of two: a home slot is a fixed-point
// fraction of it.
type index struct {
	slots []atomic.Uint32
	size  uint64
	// Writer-only: slots in use (tokens and tombstones), tombstones.
	used, tombs int
}

const tombstone = math.MaxUint32

// An index is rebuilt when its used slots pass maxLoad of its size, with
// a size that leaves the tokens at rebuildLoad of it.
const (
	maxLoadNum, maxLoadDen = 8, 10
	rebuildLoadNum         = 11
	rebuildLoadDen         = 20
	minIndex               = 1024
)

func newIndex(tokens int) *index {
	size := max(uint64(tokens)*rebuildLoadDen/rebuildLoadNum, minIndex)
	size = (size + 63) &^ 63
	return &index{slots: make([]atomic.Uint32, size), size: size}
}

// slotOf is the home slot of id. The random part of a ULID is random
// across processes but only incremented within a millisecond of one
// process, so both halves are mixed.
func (ix *index) slotOf(id *domain.TokenID) uint64 {
	lo, hi := idWords(id)
	h := (hi ^ bits.RotateLeft64(lo, 31)) * 0x9E3779B97F4A7C15
	s, _ := bits.Mul64(h, ix.size)
	return s
}

func (ix *index) next(i uint64) uint64 {
	if i++; i == ix.size {
		return 0
	}
	return i
}

// state is the validator's in-memory projection.
type state struct {
	mu sync.Mutex // serialises writers

	idx      atomic.Pointer[index]
	pages    atomic.Pointer[[]*page]
	owners   atomic.Pointer[[]domain.OwnerID]
	scopeSet atomic.Pointer[[][]string]
	// cidrSets are the interned sets of allowed networks (grant.cidrs
	// minus one).
	cidrSets atomic.Pointer[[][]netip.Prefix]
	grants   atomic.Pointer[[]grant]
	cells    cells

	// Writer-only from here.

	// hwm is how many entry numbers were ever used; live how many hold a
	// token.
	hwm  uint32
	live atomic.Uint32
	// limbo holds the numbers evicted since the current index was made;
	// free those no reader can hold any more (see the cleanup in rebuild).
	limbo  limbo
	freeMu sync.Mutex
	free   []uint32

	ownerNum internTable
	grantNum internTable
	// grantCount is the number of grants: the grant array may be longer.
	grantCount uint32
	scopeNum   map[string]uint32
	cidrNum    map[string]uint32
	ownerRevs  map[uint32]ownerRevocation

	// through is the stream sequence up to which every event is reflected
	// (the tail's position); pending holds the issue sequence of the
	// tokens inserted ahead of it (by a store lookup or Observe), the only
	// ones whose sequence a later revocation needs to compare.
	through uint64
	pending map[uint32]uint64
	// createdExc holds the creation time of the tokens whose id time is
	// not its millisecond (none that the domain issues).
	createdExc map[uint32]int64

	// Rotation families: members holds, by family, the entry numbers of
	// the tokens whose token.issued names it (the family's first token is
	// found by its id), and familyOf their family, so that tokens without
	// a family cost nothing; revokedFamilies holds, by family, the stream
	// sequence of its latest revocation (owner.family_revoked): members
	// issued at a lower sequence are revoked.
	members         map[domain.TokenID][]uint32
	familyOf        map[uint32]domain.TokenID
	revokedFamilies map[domain.TokenID]uint64

	// The hot set of a validator with a capacity (hotset.go): the
	// capacity (0: none), the clock hand, the start of its previous and
	// current rounds (Unix µs), and the trimmer's signal.
	capacity            int
	hand                uint32
	handSince, handWrap int64
	overCapacity        chan struct{}
}

// limbo is a batch of evicted entry and cell numbers.
type limbo struct{ entries, cells []uint32 }

func newState() *state {
	s := &state{
		scopeNum:        make(map[string]uint32),
		cidrNum:         make(map[string]uint32),
		ownerRevs:       make(map[uint32]ownerRevocation),
		pending:         make(map[uint32]uint64),
		createdExc:      make(map[uint32]int64),
		members:         make(map[domain.TokenID][]uint32),
		familyOf:        make(map[uint32]domain.TokenID),
		revokedFamilies: make(map[domain.TokenID]uint64),
		overCapacity:    make(chan struct{}, 1),
	}
	s.idx.Store(newIndex(0))
	s.pages.Store(&[]*page{})
	s.owners.Store(&[]domain.OwnerID{})
	s.scopeSet.Store(&[][]string{})
	s.cidrSets.Store(&[][]netip.Prefix{})
	s.grants.Store(&[]grant{})
	s.cells.init()
	return s
}

// find returns the entry of id, its number, and the index it was found
// in, which the caller keeps reachable (runtime.KeepAlive) until it is
// done with the entry; e is nil if id is not in the state. Safe for
// concurrent use with a writer; it takes no lock and does not allocate.
func (s *state) find(id *domain.TokenID) (e *entry, n uint32, ix *index) {
	ix = s.idx.Load()
	pages := *s.pages.Load()
	lo, hi := idWords(id)
	for i := ix.slotOf(id); ; i = ix.next(i) {
		v := ix.slots[i].Load()
		if v == 0 {
			return nil, 0, ix
		}
		if v == tombstone {
			continue
		}
		n := v - 1
		if int(n>>pageBits) >= len(pages) {
			// Published after the page list was read.
			pages = *s.pages.Load()
		}
		e := &pages[n>>pageBits][n&pageMask]
		if e.id[0].Load() == lo && e.id[1].Load() == hi {
			return e, n, ix
		}
	}
}

// entryAt returns entry number n, which must have been published.
func (s *state) entryAt(n uint32) *entry {
	return &(*s.pages.Load())[n>>pageBits][n&pageMask]
}

// grantAt returns grant number n, which must have been published.
func (s *state) grantAt(n uint32) grant { return (*s.grants.Load())[n] }

// ownerAt returns owner number n, which must have been published.
func (s *state) ownerAt(n uint32) domain.OwnerID { return (*s.owners.Load())[n] }

// scopesAt returns scope set number n, which must have been published.
func (s *state) scopesAt(n uint32) []string { return (*s.scopeSet.Load())[n] }

// cidrsAt returns the allowed networks of grant cidrs number n (not
// zero), which must have been published.
func (s *state) cidrsAt(n uint32) []netip.Prefix { return (*s.cidrSets.Load())[n-1] }

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
	// ownerRevoked: an owner-wide revocation covers the token.
	ownerRevoked bool
	rotated      bool
	// family is the rotation family token.issued names; zero for a token
	// not issued by a rotation (the first of its own family).
	family domain.TokenID
	// cidrs are the allowed networks (canonical; none: any), read by
	// insert; insertInterned takes cidrSet, their interned number.
	cidrs   []string
	cidrSet uint32
}

// insert adds a token that is not in the state yet. The caller holds
// s.mu.
func (s *state) insert(t newToken) {
	t.cidrSet = s.internCIDRs(t.cidrs)
	s.insertInterned(t, s.internOwner(t.owner), s.internScopes(t.scopes))
}

// insertInterned is insert for a token whose owner and scope set are
// interned already as numbers owner and scopes (t.owner and t.scopes are
// not read).
func (s *state) insertInterned(t newToken, owner, scopes uint32) {
	n, fresh := s.takeNumber()
	pages := *s.pages.Load()
	if fresh && int(n>>pageBits) == len(pages) {
		grown := append(pages, new(page))
		s.pages.Store(&grown)
		pages = grown
	}
	e := &pages[n>>pageBits][n&pageMask]
	lo, hi := idWords(&t.id)
	e.id[0].Store(lo)
	e.id[1].Store(hi)
	lo, hi = hashWords(&t.hash)
	e.hash[0].Store(lo)
	e.hash[1].Store(hi)
	e.grant.Store(s.internGrant(grant{owner: owner, scopes: scopes, cidrs: t.cidrSet, session: t.session}))
	e.cell.Store(0)

	base := idBase(&t.id)
	var st uint64
	if sub := t.created - base; sub >= 0 && sub < 1000 {
		st |= uint64(sub) << subShift
	} else {
		s.createdExc[n] = t.created
	}
	if t.revoked {
		st |= flagRevoked
	}
	if t.rotated {
		st |= flagRotated
	}
	if r, ok := s.ownerRevs[owner]; t.ownerRevoked || ok && r.covers(t.created, t.issuedSeq) {
		st |= flagOwnerRevoked
	}
	family := t.family
	if family.IsZero() {
		family = t.id
	} else {
		s.members[family] = append(s.members[family], n)
		s.familyOf[n] = family
	}
	if seq, ok := s.revokedFamilies[family]; ok && t.issuedSeq < seq {
		st |= flagRevoked
	}
	if t.issuedSeq > s.through {
		s.pending[n] = t.issuedSeq
	}
	e.state.Store(withExpiry(st, base, t.expires))

	ix := s.idx.Load()
	if (ix.used+1)*maxLoadDen > int(ix.size)*maxLoadNum {
		ix = s.rebuild(int(s.live.Load()) + 1)
	}
	ix.put(&t.id, n)
	s.live.Add(1)
	s.signalOverCapacity()
}

// takeNumber returns a free entry number, reused if one is, else fresh
// (a new one, which may need a new page).
func (s *state) takeNumber() (n uint32, fresh bool) {
	s.freeMu.Lock()
	if k := len(s.free); k > 0 {
		n = s.free[k-1]
		s.free = s.free[:k-1]
		s.freeMu.Unlock()
		return n, false
	}
	s.freeMu.Unlock()
	n = s.hwm
	s.hwm++
	return n, true
}

// put stores entry number n under id, which the index does not hold. Only
// a writer calls it.
func (ix *index) put(id *domain.TokenID, n uint32) {
	for i := ix.slotOf(id); ; i = ix.next(i) {
		switch ix.slots[i].Load() {
		case 0:
			ix.used++
			ix.slots[i].Store(n + 1)
			return
		case tombstone:
			ix.tombs--
			ix.slots[i].Store(n + 1)
			return
		}
	}
}

// remove replaces id's slot, which holds entry number n, by a tombstone.
// Only a writer calls it.
func (ix *index) remove(id *domain.TokenID, n uint32) {
	for i := ix.slotOf(id); ; i = ix.next(i) {
		switch ix.slots[i].Load() {
		case 0:
			return
		case n + 1:
			ix.slots[i].Store(tombstone)
			ix.tombs++
			return
		}
	}
}

// rebuild replaces the index with one sized for tokens, holding every
// live entry, and returns it. Readers still probing the old index find
// everything that was in it, since entries do not move; the numbers
// evicted while the old index was current are freed once it is garbage,
// as no reader can hold them then.
func (s *state) rebuild(tokens int) *index {
	old := s.idx.Load()
	ix := newIndex(tokens)
	pages := *s.pages.Load()
	for k := range s.hwm {
		e := &pages[k>>pageBits][k&pageMask]
		if live(e.state.Load()) {
			id := e.tokenID()
			ix.put(&id, k)
		}
	}
	s.idx.Store(ix)
	if len(s.limbo.entries) > 0 || len(s.limbo.cells) > 0 {
		runtime.AddCleanup(old, s.release, s.limbo)
		s.limbo = limbo{}
	}
	return ix
}

// release frees a batch of evicted numbers. It runs on the cleanup
// goroutine, once the index they were evicted from is garbage.
func (s *state) release(l limbo) {
	s.freeMu.Lock()
	s.free = append(s.free, l.entries...)
	s.freeMu.Unlock()
	s.cells.release(l.cells)
}

// internTable maps keys to the numbers of interned values by linear
// probing, for the writer only. It stores no key: the caller compares
// the value a number stands for. Beside each slot it keeps eight bits of
// the key's hash, so that a probe past another key's slot is almost
// never a comparison (a random read of the value) but a look at the
// byte beside: inserting a new key probes several slots of a table three
// quarters full, and at millions of values each comparison would be a
// cache miss.
type internTable struct {
	slots []uint32 // number plus one; 0: empty
	tags  []uint8  // the top eight bits of the hash of the slot's key
	n     int
}

var internSeed = maphash.MakeSeed()

func internTag(h uint64) uint8 { return uint8(h >> 56) }

// lookup returns the number whose value eq accepts among those stored
// under hash h.
func (t *internTable) lookup(h uint64, eq func(uint32) bool) (uint32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	tag := internTag(h)
	for i := h & mask; ; i = (i + 1) & mask {
		v := t.slots[i]
		if v == 0 {
			return 0, false
		}
		if t.tags[i] == tag && eq(v-1) {
			return v - 1, true
		}
	}
}

// add stores number num, the next one (numbers are 0, 1, 2, ...), under
// hash h; hashOf rehashes the stored numbers when the table grows. They
// are rehashed in order, which reads the values in order.
func (t *internTable) add(h uint64, num uint32, hashOf func(uint32) uint64) {
	if (t.n+1)*4 > len(t.slots)*3 {
		size := max(2*len(t.slots), 64)
		t.slots, t.tags = make([]uint32, size), make([]uint8, size)
		for k := range uint32(t.n) {
			t.place(hashOf(k), k)
		}
	}
	t.place(h, num)
	t.n++
}

func (t *internTable) place(h uint64, num uint32) {
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if t.slots[i] == 0 {
			t.slots[i] = num + 1
			t.tags[i] = internTag(h)
			return
		}
	}
}

// owner returns the number of the interned owner id, adding it if new.
// The caller holds s.mu.
func (s *state) internOwner(id domain.OwnerID) uint32 {
	h := maphash.String(internSeed, string(id))
	owners := *s.owners.Load()
	if n, ok := s.ownerNum.lookup(h, func(n uint32) bool { return owners[n] == id }); ok {
		return n
	}
	// Appending may write into the spare capacity of the array current
	// readers see, but only past the length their slice header shows.
	grown := append(owners, id)
	s.owners.Store(&grown)
	n := uint32(len(grown) - 1)
	s.ownerNum.add(h, n, func(n uint32) uint64 { return maphash.String(internSeed, string(grown[n])) })
	return n
}

// internOwnerBytes is internOwner for an owner id given as bytes, which it
// copies only if the owner is new.
func (s *state) internOwnerBytes(b []byte) uint32 {
	owners := *s.owners.Load()
	if n, ok := s.ownerNum.lookup(maphash.Bytes(internSeed, b), func(n uint32) bool { return string(owners[n]) == string(b) }); ok {
		return n
	}
	return s.internOwner(domain.OwnerID(b))
}

// ownerNumber returns the number of owner id, if it is interned.
func (s *state) ownerNumber(id domain.OwnerID) (uint32, bool) {
	owners := *s.owners.Load()
	return s.ownerNum.lookup(maphash.String(internSeed, string(id)), func(n uint32) bool { return owners[n] == id })
}

// grantHash mixes the grant's numbers: they are small integers, for which
// a multiplicative hash spreads well and costs far less than maphash.
func grantHash(g grant) uint64 {
	k := uint64(g.owner)<<32 | uint64(g.scopes) ^ uint64(g.cidrs)<<16
	if g.session {
		k ^= 1 << 63
	}
	k *= 0x9E3779B97F4A7C15
	return k ^ k>>29
}

// internGrant returns the number of the interned grant g, adding it if
// new. The caller holds s.mu.
func (s *state) internGrant(g grant) uint32 {
	h := grantHash(g)
	grants := *s.grants.Load()
	if n, ok := s.grantNum.lookup(h, func(n uint32) bool { return grants[n] == g }); ok {
		return n
	}
	// The published array is used to its full length, the grants past
	// s.grantCount unused yet: a new grant is written there and published
	// by the entry that names it, so that only a grown array is stored
	// (a new slice header per grant was garbage for the collector).
	n := s.grantCount
	if int(n) == len(grants) {
		s.growGrants()
	}
	all := *s.grants.Load()
	all[n] = g
	s.grantCount++
	s.grantNum.add(h, n, func(n uint32) uint64 { return grantHash(all[n]) })
	return n
}

// growGrants publishes a grant array half again as long, holding the
// grants. The caller holds s.mu.
func (s *state) growGrants() {
	n := int(s.grantCount)
	grown := slices.Grow((*s.grants.Load())[:n:n], max(n/2, 1024))
	grown = grown[:cap(grown)]
	s.grants.Store(&grown)
}

// fitGrants shrinks the grant array to little more than the grants hold,
// after a load that grew it by doubling. The caller holds s.mu.
func (s *state) fitGrants() {
	grants := *s.grants.Load()
	if want := int(s.grantCount) + int(s.grantCount)/8; len(grants) > want+1024 {
		fitted := make([]grant, want)
		copy(fitted, grants[:s.grantCount])
		s.grants.Store(&fitted)
	}
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

// internCIDRs returns the grant number of a set of allowed networks in
// canonical form (zero for none), adding it if new. The caller holds s.mu.
func (s *state) internCIDRs(cidrs []string) uint32 {
	if len(cidrs) == 0 {
		return 0
	}
	return s.internCIDRsText([]byte(strings.Join(cidrs, " ")))
}

// internCIDRsText is internCIDRs for the networks separated by single
// spaces, which it copies only if the set is new. Networks that do not
// parse are left out (the domain stores only canonical ones); a set of
// which none parses allows no address.
func (s *state) internCIDRsText(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	if n, ok := s.cidrNum[string(b)]; ok {
		return n
	}
	var set []netip.Prefix
	for f := range strings.FieldsSeq(string(b)) {
		if p, err := netip.ParsePrefix(f); err == nil {
			set = append(set, p.Masked())
		}
	}
	grown := append(*s.cidrSets.Load(), slices.Clip(set))
	s.cidrSets.Store(&grown)
	n := uint32(len(grown))
	s.cidrNum[string(b)] = n
	return n
}

// setCIDRs gives entry e the allowed networks cidrs (canonical; none: any
// network), keeping the rest of its grant. The caller holds s.mu.
func (s *state) setCIDRs(e *entry, cidrs []string) {
	g := s.grantAt(e.grant.Load())
	g.cidrs = s.internCIDRs(cidrs)
	e.grant.Store(s.internGrant(g))
}

// internScopesText is internScopes for a scope set given as its scopes
// separated by single spaces, which it copies only if the set is new.
func (s *state) internScopesText(b []byte) uint32 {
	if n, ok := s.scopeNum[string(b)]; ok {
		return n
	}
	var scopes []string
	if len(b) > 0 {
		scopes = strings.Split(string(b), " ")
	}
	n := s.internScopes(scopes)
	// The stored order may not be the sorted one internScopes keys by.
	s.scopeNum[string(b)] = n
	return n
}

// createdOf returns the creation time (Unix µs) of live entry number n.
// The caller holds s.mu.
func (s *state) createdOf(e *entry, n uint32) int64 {
	if c, ok := s.createdExc[n]; ok {
		return c
	}
	id := e.tokenID()
	return idBase(&id) + int64(e.state.Load()>>subShift&subMask)
}

// issuedBefore reports whether live entry number n was issued at a
// stream sequence lower than seq, which is past s.through: every token
// but those inserted ahead of the tail was. The caller holds s.mu.
func (s *state) issuedBefore(n uint32, seq uint64) bool {
	if p, ok := s.pending[n]; ok {
		return p < seq
	}
	return true
}

// noteOwnerRevocation records an owner-wide revocation of owner number
// num stored at seq with "until" until (Unix µs; noUntil if none), for the
// tokens inserted from now on. The latest one in stream order sets the
// watermark and "until" only grows, so owner revocations may be applied in
// any order, and more than once. The caller holds s.mu.
func (s *state) noteOwnerRevocation(num uint32, seq uint64, until int64) {
	r, ok := s.ownerRevs[num]
	if !ok {
		r.until = noUntil
	}
	r.watermark = max(r.watermark, seq)
	r.until = max(r.until, until)
	s.ownerRevs[num] = r
}

// revokeOwner applies an owner-wide revocation of owner stored at seq,
// past s.through, with "until" until: it is recorded, and the tokens in
// memory that it covers are flagged. This visits every entry, as
// owner-wide revocations are rare and an index by owner would cost every
// token. The caller holds s.mu.
func (s *state) revokeOwner(owner domain.OwnerID, seq uint64, until int64) {
	num := s.internOwner(owner)
	s.noteOwnerRevocation(num, seq, until)
	grants := *s.grants.Load()
	pages := *s.pages.Load()
	for k := range s.hwm {
		e := &pages[k>>pageBits][k&pageMask]
		st := e.state.Load()
		if !live(st) || st&flagOwnerRevoked != 0 || grants[e.grant.Load()].owner != num {
			continue
		}
		if s.issuedBefore(k, seq) || s.createdOf(e, k) < until {
			e.setFlags(flagOwnerRevoked)
		}
	}
}

// revokeFamily applies a revocation of family, of owner, stored at seq:
// every member of the owner issued before seq is revoked, now and when it
// is inserted later. Applying it again, or an earlier one after it,
// changes nothing. The caller holds s.mu.
func (s *state) revokeFamily(owner domain.OwnerID, family domain.TokenID, seq uint64) {
	if seq > s.revokedFamilies[family] {
		s.revokedFamilies[family] = seq
	}
	num, ok := s.ownerNumber(owner)
	if !ok {
		return
	}
	revoke := func(e *entry, n uint32) {
		if s.grantAt(e.grant.Load()).owner == num && s.issuedBefore(n, seq) {
			e.setFlags(flagRevoked)
		}
	}
	if e, n, _ := s.find(&family); e != nil {
		revoke(e, n)
	}
	for _, n := range s.members[family] {
		if e := s.entryAt(n); e.tokenID() != family {
			revoke(e, n)
		}
	}
}

// advance records that the tail is applying the event at seq: every
// event before it is reflected. The caller holds s.mu.
func (s *state) advance(seq uint64) {
	s.through = seq
	for n, p := range s.pending {
		if p <= seq {
			delete(s.pending, n)
		}
	}
}

// reserve sizes the index for tokens tokens, if it is smaller: loading
// that many then rebuilds it no more. The caller holds s.mu.
func (s *state) reserve(tokens int) {
	if ix := s.idx.Load(); newIndex(tokens).size > ix.size {
		s.rebuild(tokens)
	}
}

// fit rebuilds the index if it is much larger than the tokens need (after
// a reserve for more than came). The caller holds s.mu.
func (s *state) fit() {
	s.fitGrants()
	if newIndex(s.tokens()).size*5/4 < s.idx.Load().size {
		s.rebuild(s.tokens())
	}
}

// tokens and ownersLen report the state's size.
func (s *state) tokens() int    { return int(s.live.Load()) }
func (s *state) ownersLen() int { return len(*s.owners.Load()) }
