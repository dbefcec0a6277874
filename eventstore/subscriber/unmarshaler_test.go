package subscriber_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/eventstore/subscriber"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// noMetadata is a delivered message whose JetStream metadata cannot be
// read, as for a message that did not come from a consumer.
type noMetadata struct{ jetstream.Msg }

func (noMetadata) Metadata() (*jetstream.MsgMetadata, error) { return nil, jetstream.ErrNotJSMessage }

func TestUnmarshaler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	js, err := jetstream.New(stacktest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "U", Subjects: []string{"u.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		msgID    string
		wrap     func(jetstream.Msg) jetstream.Msg
		wantUUID func(seq uint64) string
		wantMeta bool
	}{
		{
			name:     "event id becomes the UUID",
			msgID:    "01JABCDEFGHJKMNPQRSTVWXYZ0",
			wantUUID: func(uint64) string { return "01JABCDEFGHJKMNPQRSTVWXYZ0" },
			wantMeta: true,
		},
		{
			name:     "without Nats-Msg-Id the stream sequence names it",
			wantUUID: func(seq uint64) string { return "seq-" + strconv.FormatUint(seq, 10) },
			wantMeta: true,
		},
		{
			name:     "without JetStream metadata a message still comes out, marked",
			msgID:    "01JABCDEFGHJKMNPQRSTVWXYZ1",
			wrap:     func(m jetstream.Msg) jetstream.Msg { return noMetadata{m} },
			wantUUID: func(uint64) string { return "01JABCDEFGHJKMNPQRSTVWXYZ1" },
		},
	}
	for _, tt := range tests {
		// Sequential: the cases share one consumer.
		t.Run(tt.name, func(t *testing.T) {
			body := []byte("body of " + tt.name)
			m := nats.NewMsg("u.subject")
			m.Data = body
			if tt.msgID != "" {
				m.Header.Set(jetstream.MsgIDHeader, tt.msgID)
			}
			ack, err := js.PublishMsg(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Ack(); err != nil {
				t.Fatal(err)
			}
			in := got
			if tt.wrap != nil {
				in = tt.wrap(got)
			}
			wm, err := subscriber.Unmarshaler{}.Unmarshal(in)
			if err != nil || wm == nil {
				t.Fatalf("Unmarshal = %v, %v; want a message and no error", wm, err)
			}
			if wm.UUID != tt.wantUUID(ack.Sequence) || !bytes.Equal(wm.Payload, body) {
				t.Errorf("message %q with payload %q, want %q with %q", wm.UUID, wm.Payload, tt.wantUUID(ack.Sequence), body)
			}
			md := wm.Metadata
			if md.Get(subscriber.MetadataSubject) != "u.subject" || md.Get(subscriber.MetadataReply) != got.Reply() || md.Get(subscriber.MetadataMsgID) != tt.msgID {
				t.Errorf("metadata %v: wrong subject, reply or message id", md)
			}
			if !tt.wantMeta {
				if md.Get(subscriber.MetadataError) == "" || md.Get(subscriber.MetadataStreamSequence) != "" {
					t.Errorf("metadata %v: want the error marked and no stream sequence", md)
				}
				return
			}
			stored, err := time.Parse(time.RFC3339Nano, md.Get(subscriber.MetadataStored))
			if err != nil || stored.IsZero() {
				t.Errorf("stored %q: %v", md.Get(subscriber.MetadataStored), err)
			}
			if md.Get(subscriber.MetadataStreamSequence) != strconv.FormatUint(ack.Sequence, 10) || md.Get(subscriber.MetadataDelivered) != "1" || md.Get(subscriber.MetadataError) != "" {
				t.Errorf("metadata %v: want stream sequence %d, first delivery, no error", md, ack.Sequence)
			}
		})
	}
}
