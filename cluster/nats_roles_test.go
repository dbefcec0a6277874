package cluster_test

import (
	"testing"

	"github.com/tokenledger/tokenledger/cluster"
	"github.com/tokenledger/tokenledger/webhooks"
)

// The API nodes are denied the webhook dispatcher's durable consumer under
// the name the dispatcher uses.
func TestWebhooksDurableIsTheDispatchersConsumer(t *testing.T) {
	if cluster.WebhooksDurable != webhooks.DefaultConsumer {
		t.Errorf("cluster.WebhooksDurable %q, webhooks.DefaultConsumer %q", cluster.WebhooksDurable, webhooks.DefaultConsumer)
	}
}
