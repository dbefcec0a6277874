package domain

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var usageMeta = Meta{Actor: "system:validator"}

// testUses returns n uses of distinct tokens around t0.
func testUses(t testing.TB, n int) []TokenUse {
	t.Helper()
	ent := seededEntropy(uint64(n))
	uses := make([]TokenUse, n)
	for i := range uses {
		id, err := NewTokenID(t0.Add(-time.Hour), ent)
		if err != nil {
			t.Fatal(err)
		}
		first := t0.Add(-time.Duration(i%1000) * time.Millisecond).Add(123 * time.Nanosecond)
		uses[i] = TokenUse{Token: id, Count: uint64(1 + i*37), FirstAt: first, LastAt: first.Add(time.Duration(i) * time.Microsecond)}
		if i%3 != 0 {
			uses[i].ClientAddr = fmt.Sprintf("192.0.2.%d:%d", i%250, 40000+i)
		}
	}
	return uses
}

// TestUsageBatchRoundTrip: a batch RecordUsage decides encodes to a compact
// binary form that decodes to the same event and encodes back to the same
// bytes; Uses yields the uses in order, with times normalised.
func TestUsageBatchRoundTrip(t *testing.T) {
	r := NewDefaultRegistry()
	uses := testUses(t, 500)
	events, err := RecordUsage(uses, Meta{Actor: "system:validator", CorrelationID: "flush-7"}, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("RecordUsage made %d batches, want 1", len(events))
	}
	e := events[0]
	if e.Type != TypeUsageBatch || e.AggregateKind != AggregateValidator || e.AggregateID != "system:validator" || e.Schema != 1 {
		t.Fatalf("envelope = %+v", e)
	}
	data, err := r.MarshalUsageBatch(e)
	if err != nil {
		t.Fatal(err)
	}
	if !IsUsageBatch(data) {
		t.Fatal("IsUsageBatch(encoded batch) = false")
	}
	if perUse := float64(len(data)) / float64(len(uses)); perUse > 45 {
		t.Errorf("%.1f bytes per use, want a compact encoding (≤ 45)", perUse)
	}
	got, err := r.UnmarshalUsageBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, e)
	}
	again, err := r.MarshalUsageBatch(got)
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("re-encoding differs (err %v)", err)
	}
	i := 0
	for id, u := range Uses(got) {
		want := uses[i]
		if id != want.Token || u.Count != want.Count || !u.FirstAt.Equal(NormalizeTime(want.FirstAt)) ||
			!u.LastAt.Equal(NormalizeTime(want.LastAt)) || u.ClientAddr != want.ClientAddr {
			t.Fatalf("use %d = %s %+v, want %+v", i, id, u, want)
		}
		i++
	}
	if i != len(uses) {
		t.Fatalf("Uses yielded %d uses, want %d", i, len(uses))
	}

	// The JSON registry refuses the binary form, and a JSON event is not
	// taken for a batch.
	if _, err := r.Unmarshal(data); !errors.Is(err, ErrCorruptEvent) {
		t.Errorf("Unmarshal(binary batch) = %v, want ErrCorruptEvent", err)
	}
	if IsUsageBatch([]byte(`{"id":"x"}`)) {
		t.Error("IsUsageBatch(JSON) = true")
	}
}

// TestRecordUsageSplits: a flush larger than the size limit becomes several
// batches, each within the limit, together holding every use once in order.
func TestRecordUsageSplits(t *testing.T) {
	r := NewDefaultRegistry()
	uses := testUses(t, 3000)
	const limit = 16 << 10
	events, err := RecordUsage(uses, usageMeta, t0, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 3 {
		t.Fatalf("%d batches, want the flush split", len(events))
	}
	var all []TokenUse
	ids := map[EventID]bool{}
	for _, e := range events {
		data, err := r.MarshalUsageBatch(e)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > limit {
			t.Errorf("batch %s is %d bytes, over the %d limit", e.ID, len(data), limit)
		}
		if ids[e.ID] {
			t.Errorf("event id %s used twice", e.ID)
		}
		ids[e.ID] = true
		all = append(all, e.Data.(UsageBatch).Uses...)
	}
	if len(all) != len(uses) {
		t.Fatalf("batches hold %d uses, want %d", len(all), len(uses))
	}
	for i := range all {
		if all[i].Token != uses[i].Token {
			t.Fatalf("use %d is token %s, want %s", i, all[i].Token, uses[i].Token)
		}
	}

	many, err := RecordUsage(testUses(t, MaxUsageBatchUses+1), usageMeta, t0, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(many) != 2 {
		t.Errorf("%d uses made %d batches, want 2", MaxUsageBatchUses+1, len(many))
	}
}

// TestRecordUsageRefuses: the domain decides what a flush may record.
func TestRecordUsageRefuses(t *testing.T) {
	good := testUses(t, 2)
	with := func(f func(u *TokenUse)) []TokenUse {
		u := append([]TokenUse(nil), good...)
		f(&u[1])
		return u
	}
	cases := []struct {
		name  string
		uses  []TokenUse
		meta  Meta
		limit int
	}{
		{"no uses", nil, usageMeta, 0},
		{"zero count", with(func(u *TokenUse) { u.Count = 0 }), usageMeta, 0},
		{"no token", with(func(u *TokenUse) { u.Token = TokenID{} }), usageMeta, 0},
		{"last before first", with(func(u *TokenUse) { u.LastAt = u.FirstAt.Add(-time.Second) }), usageMeta, 0},
		{"zero time", with(func(u *TokenUse) { u.FirstAt = time.Time{} }), usageMeta, 0},
		{"address too long", with(func(u *TokenUse) { u.ClientAddr = string(bytes.Repeat([]byte("a"), MaxClientAddrLen+1)) }), usageMeta, 0},
		{"control character in address", with(func(u *TokenUse) { u.ClientAddr = "a\nb" }), usageMeta, 0},
		{"token twice", with(func(u *TokenUse) { u.Token = good[0].Token }), usageMeta, 0},
		{"no actor", good, Meta{}, 0},
		{"limit too small", good, usageMeta, MinUsageBatchBytes - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := RecordUsage(c.uses, c.meta, t0, c.limit); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("RecordUsage = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// TestUnmarshalUsageBatchRefuses: bytes that are not a batch, or not in
// its one canonical form, are corrupt, not a panic nor a different batch.
func TestUnmarshalUsageBatchRefuses(t *testing.T) {
	r := NewDefaultRegistry()
	events, err := RecordUsage(testUses(t, 3), usageMeta, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, err := r.MarshalUsageBatch(events[0])
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(data)) }
	cases := map[string][]byte{
		"empty":           {},
		"unknown version": edit(func(b []byte) []byte { b[0] = 2; return b }),
		"truncated":       data[:len(data)-1],
		"trailing byte":   append(bytes.Clone(data), 0),
		"zero event id":   edit(func(b []byte) []byte { copy(b[1:17], make([]byte, 16)); return b }),
		"header only":     data[:17],
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := r.UnmarshalUsageBatch(b); !errors.Is(err, ErrCorruptEvent) {
				t.Errorf("UnmarshalUsageBatch = %v, want ErrCorruptEvent", err)
			}
		})
	}
	if _, err := NewRegistry().UnmarshalUsageBatch(data); !errors.Is(err, ErrUnknownEventType) {
		t.Errorf("a registry without usage batches: %v, want ErrUnknownEventType", err)
	}
}

// FuzzUnmarshalUsageBatch: arbitrary bytes never panic the decoder; what it
// accepts encodes back to the same bytes.
func FuzzUnmarshalUsageBatch(f *testing.F) {
	r := NewDefaultRegistry()
	for _, n := range []int{1, 3, 40} {
		events, err := RecordUsage(testUses(f, n), Meta{Actor: "system:validator", CorrelationID: "c"}, t0, 0)
		if err != nil {
			f.Fatal(err)
		}
		data, err := r.MarshalUsageBatch(events[0])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{usageBatchV1})
	f.Add([]byte(`{"id":"01J00000000000000000000000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := r.UnmarshalUsageBatch(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptEvent) {
				t.Fatalf("error %v is not ErrCorruptEvent", err)
			}
			return
		}
		again, err := r.MarshalUsageBatch(e)
		if err != nil {
			t.Fatalf("a decoded batch does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded\n%x\nwant\n%x", again, data)
		}
	})
}
