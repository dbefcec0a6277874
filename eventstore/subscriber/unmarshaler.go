package subscriber

import (
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"
)

// Watermill metadata keys set by Unmarshaler.
const (
	// MetadataStreamSequence is the message's stream sequence, in decimal.
	MetadataStreamSequence = "tl_stream_sequence"
	// MetadataSubject is the subject the message was stored on.
	MetadataSubject = "tl_subject"
	// MetadataMsgID is the message's Nats-Msg-Id header: the event id.
	MetadataMsgID = "tl_msg_id"
	// MetadataStored is the instant the stream stored the message, in
	// RFC 3339 with nanoseconds.
	MetadataStored = "tl_stored"
	// MetadataDelivered is how many times the message has been delivered,
	// this delivery included.
	MetadataDelivered = "tl_delivered"
	// MetadataReply is the delivery's acknowledgement subject.
	MetadataReply = "tl_reply"
	// MetadataError is set, to the reason, when the message carries no
	// JetStream metadata; the other keys except MetadataSubject and
	// MetadataReply are then absent.
	MetadataError = "tl_unmarshal_error"
)

// Unmarshaler turns a JetStream message into a watermill message whose
// payload is the message body and whose metadata holds the stream sequence,
// subject, event id, storage time, delivery count and acknowledgement
// subject (the Metadata* keys). The message UUID is the Nats-Msg-Id (the
// event id) or, for a message without one, "seq-" and its stream sequence.
//
// It never returns an error: watermill-nats's subscriber uses the message
// even when Unmarshal fails, and would dereference nil. A message without
// JetStream metadata gets MetadataError instead, for the handler to deal
// with. The zero value is ready to use and safe for concurrent use.
type Unmarshaler struct{}

// Unmarshal implements watermill-nats jetstream.Unmarshaler. The error is
// always nil.
func (Unmarshaler) Unmarshal(msg jetstream.Msg) (*message.Message, error) {
	msgID := msg.Headers().Get(jetstream.MsgIDHeader)
	md := make(message.Metadata, 7)
	md.Set(MetadataSubject, msg.Subject())
	md.Set(MetadataReply, msg.Reply())
	meta, err := msg.Metadata()
	uuid := msgID
	if err != nil {
		md.Set(MetadataError, err.Error())
		if uuid == "" {
			uuid = "no-metadata"
		}
	} else {
		seq := strconv.FormatUint(meta.Sequence.Stream, 10)
		md.Set(MetadataStreamSequence, seq)
		md.Set(MetadataStored, meta.Timestamp.UTC().Format(time.RFC3339Nano))
		md.Set(MetadataDelivered, strconv.FormatUint(meta.NumDelivered, 10))
		if uuid == "" {
			uuid = "seq-" + seq
		}
	}
	if msgID != "" {
		md.Set(MetadataMsgID, msgID)
	}
	wm := message.NewMessage(uuid, msg.Data())
	wm.Metadata = md
	return wm, nil
}
