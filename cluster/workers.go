package cluster

import (
	"context"
	"fmt"
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

// KillWorker kills the running serve or project process named name with
// SIGKILL, as a crash would, and waits for its exit. The project process
// Start runs is named "project-1", the serve nodes "serve-1" and "serve-2".
func (c *Cluster) KillWorker(name string) error {
	c.mu.Lock()
	var target *process
	for _, p := range c.workers {
		if p.name == name && p.running() {
			target = p
		}
	}
	c.mu.Unlock()
	if target == nil {
		return fmt.Errorf("no running process named %q", name)
	}
	target.kill()
	return nil
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
