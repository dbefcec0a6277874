// Package deploy holds no code: its tests check the deployment files under
// deploy/ against the code they must agree with.
package deploy

import (
	"maps"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tokenledger/tokenledger/cluster"
	"github.com/tokenledger/tokenledger/eventstore"
)

// natsConfig is the cluster nodes' configuration, relative to this package.
const natsConfig = "nats/nats-server.conf"

// TestNATSConfigDenyLists checks that the users of deploy/nats/nats-server.conf
// are denied exactly what the event store says each role must be denied,
// for the default stream and consumer names, so that the file cannot drift
// from eventstore.ProtectedAPISubjects and
// eventstore.APINodeDeniedAPISubjects; and that the operator alone is
// unrestricted.
func TestNATSConfigDenyLists(t *testing.T) {
	for _, v := range []string{"NATS_OPERATOR_PASSWORD", "NATS_API_PASSWORD", "NATS_WORKER_PASSWORD", "NATS_VALIDATOR_PASSWORD"} {
		t.Setenv(v, "secret-"+v)
	}
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	opts, err := server.ProcessConfigFile(natsConfig)
	if err != nil {
		t.Fatalf("parse %s: %v", natsConfig, err)
	}
	streams := []string{eventstore.DefaultStream, eventstore.DefaultUsageStream}
	apiDenied := eventstore.APINodeDeniedAPISubjects(streams, cluster.WorkerDurables())
	want := map[string][]string{
		"api":       apiDenied,
		"validator": apiDenied,
		"worker":    eventstore.ProtectedAPISubjects(streams...),
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	if len(users) != len(want)+1 {
		t.Errorf("users %v, want operator and %d roles", slices.Sorted(maps.Keys(users)), len(want))
	}
	op := users["operator"]
	if op == nil || op.Permissions != nil {
		t.Errorf("operator: %+v, want a user without restrictions", op)
	}
	for name, deny := range want {
		u := users[name]
		if u == nil {
			t.Errorf("user %s missing", name)
			continue
		}
		if u.Account == nil || op == nil || op.Account == nil || u.Account.Name != op.Account.Name {
			t.Errorf("user %s is not in the operator's account", name)
		}
		if u.Permissions == nil || u.Permissions.Publish == nil {
			t.Errorf("user %s has no publish permissions", name)
			continue
		}
		if got := u.Permissions.Publish.Deny; !slices.Equal(got, deny) {
			t.Errorf("user %s publish deny list:\n got %q\nwant %q", name, got, deny)
		}
		if u.Permissions.Subscribe == nil || !slices.Equal(u.Permissions.Subscribe.Allow, []string{"_INBOX.>"}) {
			t.Errorf("user %s may subscribe to %+v, want only the reply inboxes", name, u.Permissions.Subscribe)
		}
	}
}
