package cluster

import (
	"context"
	"net"
	"strconv"

	"github.com/tokenledger/tokenledger/natsconn"
)

// StartServe starts one more `tokenledger serve` node, named name, on a
// free port, and returns its base URL once it is ready (APIURLs keeps listing
// the nodes Start started). It is stopped with the cluster, or by
// KillWorker.
func (c *Cluster) StartServe(ctx context.Context, name string) (string, error) {
	return c.startReady(ctx, name, c.secrets.api, 0, "serve", "--http-addr")
}

// StartProject starts one more `tokenledger project` process, named name,
// with its health endpoint on a free port, and returns the endpoint's base
// URL once /readyz answers 200: as the active process, or as a standby
// while another leads the projection. It is stopped with the cluster, or by
// KillWorker.
func (c *Cluster) StartProject(ctx context.Context, name string) (string, error) {
	return c.startReady(ctx, name, c.secrets.worker, 0, "project", "--health-listen")
}

// startReady starts `tokenledger command` as name with auth's credentials,
// listening on port (a free one when 0) as addrFlag says, and returns the
// base URL of what it serves once its /readyz answers 200.
func (c *Cluster) startReady(ctx context.Context, name string, auth natsconn.Auth, port int, command, addrFlag string) (string, error) {
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return "", err
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	p, err := c.startWorker(name, auth, command, addrFlag, addr)
	if err != nil {
		return "", err
	}
	url := "http://" + addr
	if err := waitReady(ctx, p, url+"/readyz"); err != nil {
		return "", err
	}
	return url, nil
}

// freePort returns a port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
