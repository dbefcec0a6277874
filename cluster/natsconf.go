package cluster

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tokenledger/tokenledger/eventstore"
)

// natsNode is one nats-server of the cluster.
type natsNode struct {
	name                    string
	clientPort, routePort   int
	monitorPort             int
	storeDir, conf, logFile string
}

// natsServerConfig is the configuration file of node (nats-server reads
// JSON): JetStream, mutual TLS for clients and routes with the cluster's
// CA, routes to every node, and the users of the three roles: the operator
// (user and password; everything), the API nodes (an NKey; denied
// eventstore.APINodeDeniedAPISubjects) and the workers (an NKey; denied
// eventstore.ProtectedAPISubjects).
func natsServerConfig(host string, node natsNode, all []natsNode, s *secrets, store eventstore.Config) ([]byte, error) {
	tlsBlock := func(name string) map[string]any {
		return map[string]any{
			"cert_file": s.nodeCert[name],
			"key_file":  s.nodeKey[name],
			"ca_file":   s.ca,
			"verify":    true,
			"timeout":   2,
		}
	}
	var routes []string
	for _, n := range all {
		routes = append(routes, "nats-route://"+net.JoinHostPort(host, strconv.Itoa(n.routePort)))
	}
	conf := map[string]any{
		"server_name": node.name,
		"host":        host,
		"port":        node.clientPort,
		"http":        net.JoinHostPort(host, strconv.Itoa(node.monitorPort)),
		"jetstream":   map[string]any{"store_dir": node.storeDir},
		"tls":         tlsBlock(node.name),
		"cluster": map[string]any{
			"name":   "tokenledger",
			"host":   host,
			"port":   node.routePort,
			"routes": routes,
			"tls":    tlsBlock(node.name),
		},
		"authorization": map[string]any{
			"users": []map[string]any{
				{"user": operatorUser, "password": s.operatorPassword},
				{"nkey": s.apiNKey, "permissions": permissions(APINodePermissions(store))},
				{"nkey": s.workerNKey, "permissions": permissions(WorkerPermissions(store))},
			},
		},
	}
	// nats-server's parser knows no \u escapes: keep > and & as they are.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func permissions(p *server.Permissions) map[string]any {
	out := map[string]any{}
	if p.Publish != nil {
		out["publish"] = map[string]any{"allow": p.Publish.Allow, "deny": p.Publish.Deny}
	}
	if p.Subscribe != nil {
		out["subscribe"] = map[string]any{"allow": p.Subscribe.Allow, "deny": p.Subscribe.Deny}
	}
	return out
}
