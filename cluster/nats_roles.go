package cluster

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// APINodePermissions are the NATS permissions of the API nodes' (and
// embedded validators') user on a deployment whose streams store names:
// publish anything (appends, reads, their own short-lived consumers)
// except what eventstore.APINodeDeniedAPISubjects lists, so they cannot
// delete, purge or reconfigure the streams, nor delete, create or change
// the workers' durable consumers (WorkerDurables).
func APINodePermissions(store eventstore.Config) *server.Permissions {
	streams := []string{store.Stream, store.UsageStream}
	return &server.Permissions{Publish: &server.SubjectPermission{
		Allow: []string{">"},
		Deny:  eventstore.APINodeDeniedAPISubjects(streams, WorkerDurables()),
	}}
}

// WebhooksDurable is the webhook dispatcher's durable consumer,
// webhooks.DefaultConsumer (named here so that cluster stays below the
// workers; a test keeps the two equal).
const WebhooksDurable = "tokenledger_webhooks"

// WorkerDurables are the default names of the durable consumers the
// workers read the streams with: the two projections' and the webhook
// dispatcher's.
func WorkerDurables() []string {
	return []string{projections.LifecycleName, projections.UsageName, WebhooksDurable}
}

// WorkerPermissions are the NATS permissions of the workers' (`project`)
// user: everything an API node may do, and managing the durable
// consumers, but never deleting, purging or reconfiguring the streams
// (eventstore.ProtectedAPISubjects). Only the operator's user, which runs
// `streams init` and `admin bootstrap`, has no restriction.
func WorkerPermissions(store eventstore.Config) *server.Permissions {
	return &server.Permissions{Publish: &server.SubjectPermission{
		Allow: []string{">"},
		Deny:  eventstore.ProtectedAPISubjects(store.Stream, store.UsageStream),
	}}
}
