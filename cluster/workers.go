package cluster

import (
	"context"
	"net"
	"strconv"
)

// StartServe starts one more `tokenledger serve` node, named name, on a
// free port, and returns its base URL once it is ready (APIURLs keeps listing
// the nodes Start started). It is stopped with the cluster, or by
// KillWorker.
func (c *Cluster) StartServe(ctx context.Context, name string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	p, err := c.startWorker(name, c.secrets.api, "serve", "--http-addr", addr)
	if err != nil {
		return "", err
	}
	url := "http://" + addr
	if err := waitReady(ctx, p, url+"/readyz"); err != nil {
		return "", err
	}
	return url, nil
}

// StartProject starts one more `tokenledger project` process, named name,
// with its health endpoint on a free port, and returns the endpoint's base
// URL once /readyz answers 200: as the active process, or as a standby
// while another leads the projection. It is stopped with the cluster, or by
// KillWorker.
func (c *Cluster) StartProject(ctx context.Context, name string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	p, err := c.startWorker(name, c.secrets.worker, "project", "--health-listen", addr)
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
