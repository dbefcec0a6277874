package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// devBanner is what `tokenledger dev` prints on stdout once it is up.
type devBanner struct {
	NATSURL     string
	PostgresURL string
	APIURL      string
	// Admin is the first admin token's secret, printed on the first start
	// only.
	Admin string
}

var (
	bannerNATS     = regexp.MustCompile(`^\s+NATS \(JetStream\)\s+(nats://\S+)`)
	bannerPostgres = regexp.MustCompile(`^\s+PostgreSQL\s+(postgres(?:ql)?://\S+)`)
	bannerAPI      = regexp.MustCompile(`^\s+API\s+(http://\S+)`)
	bannerSecret   = regexp.MustCompile(`^\s+(` + domain.SecretPrefix + `\S+)\s*$`)
	serveListening = regexp.MustCompile(`listening on (http://\S+)`)
)

const bannerReady = "Ready. Ctrl-C stops it."

// parseBanner reads the banner's lines.
func parseBanner(lines []string) (devBanner, error) {
	var b devBanner
	for _, l := range lines {
		if m := bannerNATS.FindStringSubmatch(l); m != nil {
			b.NATSURL = m[1]
		} else if m := bannerPostgres.FindStringSubmatch(l); m != nil {
			b.PostgresURL = m[1]
		} else if m := bannerAPI.FindStringSubmatch(l); m != nil {
			b.APIURL = m[1]
		} else if m := bannerSecret.FindStringSubmatch(l); m != nil && b.Admin == "" {
			b.Admin = m[1]
		}
	}
	var missing []string
	if b.NATSURL == "" {
		missing = append(missing, "NATS URL")
	}
	if b.PostgresURL == "" {
		missing = append(missing, "PostgreSQL URL")
	}
	if b.APIURL == "" {
		missing = append(missing, "API URL")
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("the dev banner lacks the %s:\n%s", strings.Join(missing, ", "), redact(strings.Join(lines, "\n")))
	}
	return b, nil
}

// devStack is a running `tokenledger dev` with the connections the bench
// keeps to its NATS and PostgreSQL.
type devStack struct {
	devBanner
	proc    *proc
	dataDir string
	nc      *nats.Conn
	store   *eventstore.Store
	pool    *pgxpool.Pool
}

// startDev starts `tokenledger dev` on dataDir. On the first start every
// port is a free one; a restart (prev set) asks for the same ports again
// and keeps prev's admin token.
func (b *bench) startDev(ctx context.Context, dataDir string, prev *devStack) (*devStack, error) {
	natsPort, pgPort, httpAddr := "0", "0", "127.0.0.1:0"
	name := "dev"
	if prev != nil {
		natsPort, pgPort, httpAddr = urlPort(prev.NATSURL), urlPort(prev.PostgresURL), urlHost(prev.APIURL)
		name = "dev-restart"
	}
	p, err := b.procs.start(name, b.cfg.repo, nil, true, b.cfg.tokenledger, "dev",
		"--data-dir", dataDir, "--nats-port", natsPort, "--postgres-port", pgPort, "--http-addr", httpAddr,
		"--webhook-allow-private") // the webhook scenario's receiver listens on loopback
	if err != nil {
		return nil, err
	}
	d := &devStack{proc: p, dataDir: dataDir}
	var lines []string
	if _, err := b.procs.waitLine(ctx, p, 5*time.Minute, func(l string) bool {
		lines = append(lines, l)
		return l == bannerReady
	}); err != nil {
		return d, err
	}
	if d.devBanner, err = parseBanner(lines); err != nil {
		return d, err
	}
	switch {
	case prev != nil:
		d.Admin = prev.Admin
	case d.Admin == "":
		return d, fmt.Errorf("the first start of tokenledger dev printed no admin token:\n%s", redact(strings.Join(lines, "\n")))
	}
	if err := waitReady(ctx, d.APIURL, 2*time.Minute); err != nil {
		return d, err
	}
	if d.nc, err = nats.Connect(d.NATSURL, nats.Name("tokenledger-bench")); err != nil {
		return d, fmt.Errorf("connect to the dev stack's NATS: %w", err)
	}
	if d.store, err = eventstore.OpenExisting(ctx, d.nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig()); err != nil {
		return d, fmt.Errorf("the dev stack's event store: %w", err)
	}
	if d.pool, err = pgxpool.New(ctx, d.PostgresURL); err != nil {
		return d, fmt.Errorf("connect to the dev stack's PostgreSQL: %w", err)
	}
	return d, nil
}

// stopDev stops the stack gracefully (it flushes usage and stops
// PostgreSQL), killing it if it takes too long.
func (b *bench) stopDev(d *devStack) {
	if d == nil {
		return
	}
	if d.pool != nil {
		d.pool.Close()
	}
	if d.store != nil {
		_ = d.store.Close()
	}
	if d.nc != nil {
		d.nc.Close()
	}
	if d.proc != nil {
		b.procs.stop(d.proc, syscall.SIGINT, 60*time.Second)
	}
}

// streamLast returns the lifecycle stream's last sequence.
func (d *devStack) streamLast(ctx context.Context) (uint64, error) {
	st, err := d.store.State(ctx, eventstore.Lifecycle)
	if err != nil {
		return 0, fmt.Errorf("lifecycle stream info: %w", err)
	}
	return st.Last, nil
}

// checkpoint returns the lifecycle projection's checkpoint.
func (d *devStack) checkpoint(ctx context.Context) (uint64, error) {
	var seq int64
	err := d.pool.QueryRow(ctx, `SELECT last_seq FROM projection_checkpoints WHERE name = 'lifecycle'`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("read the lifecycle checkpoint: %w", err)
	}
	return uint64(seq), nil
}

// waitProjected waits until the live projector has applied every event
// of the lifecycle stream, so that a scenario starts on a quiet system.
func (d *devStack) waitProjected(ctx context.Context, timeout time.Duration) error {
	last, err := d.streamLast(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		cp, err := d.checkpoint(ctx)
		if err != nil {
			return err
		}
		if cp >= last {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lifecycle projector is at %d of %d events after %s", cp, last, timeout)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// startServe starts `tokenledger serve` against the dev stack's NATS and
// PostgreSQL on a free port and returns its URL once it is ready.
func (b *bench) startServe(ctx context.Context, name string, d *devStack) (*proc, string, error) {
	p, err := b.procs.start(name, b.cfg.repo, nil, true, b.cfg.tokenledger, "serve",
		"--nats-url", d.NATSURL, "--postgres-url", d.PostgresURL, "--http-addr", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	line, err := b.procs.waitLine(ctx, p, 2*time.Minute, serveListening.MatchString)
	if err != nil {
		return p, "", err
	}
	u := serveListening.FindStringSubmatch(line)[1]
	if err := waitReady(ctx, u, time.Minute); err != nil {
		return p, "", err
	}
	return p, u, nil
}

// waitReady polls base/readyz until it answers 200.
func waitReady(ctx context.Context, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not ready after %s: %s", base, timeout, last)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// httpClient is shared by every request the bench makes itself; it keeps
// enough idle connections for the open-loop issue load.
var httpClient = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	},
}

func urlPort(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "0"
	}
	if p := u.Port(); p != "" {
		return p
	}
	return "0"
}

func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "127.0.0.1:0"
	}
	return u.Host
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
