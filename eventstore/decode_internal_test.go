package eventstore

import "testing"

func TestParseAckReply(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		reply  string
		seq    uint64
		ts     int64
		wantOK bool
	}{
		{"v1 layout", "$JS.ACK.TL.cons.1.42.7.1700000000000000000.3", 42, 1700000000000000000, true},
		{"v2 layout", "$JS.ACK._.ACCHASH.TL.cons.1.42.7.1700000000000000000.3.rnd", 42, 1700000000000000000, true},
		{"v2 without the last token", "$JS.ACK.dom.ACCHASH.TL.cons.1.42.7.1700000000000000000.3", 42, 1700000000000000000, true},
		{"not an ack subject", "_INBOX.abc.def", 0, 0, false},
		{"too few tokens", "$JS.ACK.TL.cons.1.42.7", 0, 0, false},
		{"ten tokens", "$JS.ACK.a.TL.cons.1.42.7.17.3", 0, 0, false},
		{"too many tokens", "$JS.ACK.a.b.c.d.e.f.g.h.i.j.k", 0, 0, false},
		{"sequence not a number", "$JS.ACK.TL.cons.1.x2.7.1700000000000000000.3", 0, 0, false},
		{"zero sequence", "$JS.ACK.TL.cons.1.0.7.1700000000000000000.3", 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seq, ts, ok := parseAckReply(tc.reply)
			if ok != tc.wantOK || seq != tc.seq || ts != tc.ts {
				t.Fatalf("parseAckReply(%q) = %d, %d, %v; want %d, %d, %v", tc.reply, seq, ts, ok, tc.seq, tc.ts, tc.wantOK)
			}
		})
	}
}

func TestParseAckReplyDoesNotAllocate(t *testing.T) {
	reply := "$JS.ACK._.ACCHASH.TL.cons.1.42.7.1700000000000000000.3.rnd"
	if n := testing.AllocsPerRun(100, func() { parseAckReply(reply) }); n != 0 {
		t.Fatalf("parseAckReply allocates %v times", n)
	}
}

func TestParseAckReplyPending(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		pending     uint64
		ok          bool
	}{
		{"v1 layout", "$JS.ACK.TL.cons.1.42.7.1700000000000000000.3", 3, true},
		{"v2 layout", "$JS.ACK._.ACCHASH.TL.cons.1.42.7.1700000000000000000.5.rnd", 5, true},
		{"v2 without the last token", "$JS.ACK.dom.ACCHASH.TL.cons.1.42.7.1700000000000000000.0", 0, true},
		{"pending not a number", "$JS.ACK.TL.cons.1.42.7.1700000000000000000.x", 0, false},
		{"too few tokens", "$JS.ACK.TL.cons.1.42.7", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq, _, pending, ok := parseAckReplyPending(tc.reply)
			if ok != tc.ok || pending != tc.pending || (ok && seq != 42) {
				t.Fatalf("parseAckReplyPending(%q) = seq %d, pending %d, %v; want pending %d, %v", tc.reply, seq, pending, ok, tc.pending, tc.ok)
			}
		})
	}
	reply := "$JS.ACK._.ACCHASH.TL.cons.1.42.7.1700000000000000000.3.rnd"
	if n := testing.AllocsPerRun(100, func() { parseAckReplyPending(reply) }); n != 0 {
		t.Fatalf("parseAckReplyPending allocates %v times", n)
	}
}
