package validator

import (
	"sync"
	"sync/atomic"
)

// Usage cells hold the per-token usage counters (see usage.go). Only a
// token used since it entered memory has one: its entry holds the cell's
// number, set by the first use, and the cell is freed with the entry.
// Cells live in pages that never move and hold no pointer.

// usageCell counts a token's uses since the last flush and the times of
// the first and last of them (Unix µs).
type usageCell struct {
	uses      atomic.Uint32
	usedFirst atomic.Int64
	usedLast  atomic.Int64
}

const (
	cellPageBits = 10
	cellPageSize = 1 << cellPageBits
	cellPageMask = cellPageSize - 1
)

type cellPage [cellPageSize]usageCell

type cells struct {
	pages atomic.Pointer[[]*cellPage]
	// mu guards n (cell numbers ever used) and free.
	mu   sync.Mutex
	n    uint32
	free []uint32
}

func (c *cells) init() { c.pages.Store(&[]*cellPage{}) }

// at returns cell number k, which must have been published.
func (c *cells) at(k uint32) *usageCell {
	return &(*c.pages.Load())[k>>cellPageBits][k&cellPageMask]
}

// of returns e's cell, or nil if it has none.
func (c *cells) of(e *entry) *usageCell {
	k := e.cell.Load()
	if k == 0 {
		return nil
	}
	return c.at(k - 1)
}

// get returns e's cell, giving it one if it has none. Safe for concurrent
// use; giving one takes c.mu, once per token.
func (c *cells) get(e *entry) *usageCell {
	if u := c.of(e); u != nil {
		return u
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.of(e); u != nil {
		return u
	}
	var k uint32
	if n := len(c.free); n > 0 {
		k = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		k = c.n
		c.n++
		pages := *c.pages.Load()
		if int(k>>cellPageBits) == len(pages) {
			grown := append(pages, new(cellPage))
			c.pages.Store(&grown)
		}
	}
	u := c.at(k)
	u.uses.Store(0)
	u.usedFirst.Store(0)
	u.usedLast.Store(0)
	e.cell.Store(k + 1)
	return u
}

// release frees cell numbers no reader can hold any more.
func (c *cells) release(ks []uint32) {
	if len(ks) == 0 {
		return
	}
	c.mu.Lock()
	c.free = append(c.free, ks...)
	c.mu.Unlock()
}
