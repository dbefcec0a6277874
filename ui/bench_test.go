package ui

import (
	"bytes"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
)

// BenchmarkListPage10000 renders the token list page of 10,000 tokens
// (ten times the largest page the read model answers) server-side: the
// rows put in words and the whole HTML page written, as the list handler
// does after the ledger answered. One op is one page.
func BenchmarkListPage10000(b *testing.B) {
	const n = 10_000
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	rows := make([]projections.TokenRow, n)
	for i := range rows {
		r := projections.TokenRow{
			ID:        domain.TokenID(ulid.MustNew(ulid.Timestamp(now.Add(-time.Duration(i)*time.Minute)), bytes.NewReader(bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 8)))),
			Owner:     domain.OwnerID(fmt.Sprintf("owner-%d", i%50)),
			Name:      fmt.Sprintf("deploy-bot-%d", i),
			Scopes:    []string{"deploy", "read"},
			Kind:      domain.KindAPI,
			CreatedAt: now.Add(-time.Duration(i) * time.Minute),
			Status:    domain.StatusActive,
			UseCount:  uint64(i),
		}
		if i%3 != 0 {
			r.LastUsedAt = now.Add(-time.Duration(i) * time.Second)
		}
		if i%4 != 0 {
			r.ExpiresAt = now.Add(time.Duration(i-2000) * time.Hour)
		}
		rows[i] = r
	}
	p, err := parsePages()
	if err != nil {
		b.Fatal(err)
	}
	me := &visit{Caller: ledger.Caller{Owner: "admin", Scopes: []string{ledger.ScopeAdmin}}, CSRF: "csrf"}
	q := url.Values{"status": {"active"}}
	var buf bytes.Buffer
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		buf.Reset()
		d := listPage(projections.Page{Items: rows, NextCursor: "next"}, q, now)
		if err := p.write(&buf, "list", page{Title: "Tokens", Me: me, Data: d}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/page")
	// CPU time as well as wall time: on a shared machine the wall time
	// includes waiting for a core.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
