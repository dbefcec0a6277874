package eventstore

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
)

// OpenJetStream is Open on a JetStream handle of the test's making (one
// that loses acknowledgements, say).
var OpenJetStream = open

// DecodeRaw is decodeRaw, for tests that read a stored message themselves.
func (s *Store) DecodeRaw(msg *jetstream.RawStreamMsg) (domain.Envelope, error) {
	return s.decodeRaw(msg)
}
