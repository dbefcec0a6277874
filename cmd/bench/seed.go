package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// issued is a token the bench issued: its id and its secret (kept only in
// the bench's token files, for wrk).
type issued struct {
	ID     string
	Secret string
}

// issueTokens issues n tokens through the API at base with the admin
// token, from a few concurrent callers, owners spread over 100 names.
func issueTokens(ctx context.Context, base, admin, prefix string, n int) ([]issued, error) {
	client, err := sdk.New(base, sdk.WithToken(admin), sdk.WithHTTPClient(httpClient))
	if err != nil {
		return nil, fmt.Errorf("api client: %w", err)
	}
	out := make([]issued, n)
	var next atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				exp := sdk.Duration(24 * time.Hour)
				tok, err := client.Issue(ctx, sdk.IssueRequest{
					Owner:     fmt.Sprintf("%s-owner-%d", prefix, i%100),
					Name:      fmt.Sprintf("%s %d", prefix, i),
					Scopes:    []string{"read"},
					ExpiresIn: &exp,
				})
				if err != nil {
					errs <- fmt.Errorf("issue token %d through %s: %w", i, base, err)
					return
				}
				out[i] = issued{ID: tok.ID, Secret: tok.Secret}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// writeTokenFile writes one secret per line, readable by the owner only.
func writeTokenFile(path string, toks []issued) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, t := range toks {
		w.WriteString(t.Secret)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("token file: %w", err)
	}
	return f.Close()
}

// seedChunk is a run of token.issued events and their secrets.
type seedChunk struct {
	events  []domain.Envelope
	secrets []string
}

// seedTokens stores n token.issued events straight into the lifecycle
// stream with eventstore.Store.Seed, as an issue call would store them
// (domain.IssueToken) but without the per-owner expectation, and writes
// the secrets to tokenFile. It returns the publish rate.
func seedTokens(ctx context.Context, d *devStack, n int, tokenFile string) (float64, error) {
	policy := domain.DefaultPolicy()
	meta := domain.Meta{Actor: "bench:seed", CorrelationID: "bench-seed"}
	now := time.Now()

	f, err := os.OpenFile(tokenFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)

	const chunk = 4096
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan seedChunk, 4)
	var encErr atomic.Value
	var next atomic.Int64
	var enc sync.WaitGroup
	for range 2 {
		enc.Go(func() {
			for {
				start := int(next.Add(chunk) - chunk)
				if start >= n || ctx.Err() != nil {
					return
				}
				c := seedChunk{}
				for i := start; i < min(start+chunk, n); i++ {
					tok, secret, err := domain.IssueToken(policy, nil, domain.IssueRequest{
						Owner:  domain.OwnerID(fmt.Sprintf("seed-owner-%d", i%10_000)),
						Name:   "seed",
						Scopes: []string{"read"},
					}, meta, now, nil)
					if err != nil {
						encErr.Store(err)
						cancel()
						return
					}
					c.events = append(c.events, tok.Changes()...)
					c.secrets = append(c.secrets, secret.Reveal())
				}
				select {
				case chunks <- c:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		enc.Wait()
		close(chunks)
	}()

	start := time.Now()
	published := 0
	for c := range chunks {
		if err := d.store.Seed(ctx, c.events); err != nil {
			return 0, err
		}
		for _, s := range c.secrets {
			w.WriteString(s)
			w.WriteByte('\n')
		}
		published += len(c.secrets)
	}
	elapsed := time.Since(start)
	if err, _ := encErr.Load().(error); err != nil {
		return 0, fmt.Errorf("encode token.issued: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if published != n {
		return 0, fmt.Errorf("published %d tokens, want %d", published, n)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("token file: %w", err)
	}
	return float64(n) / elapsed.Seconds(), nil
}
