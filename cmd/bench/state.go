package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// stateRun is one `tokenledger state --at` over the whole lifecycle
// stream.
type stateRun struct {
	// Events is the stream sequence the state was taken at, Tokens how
	// many tokens it listed, Seconds the command's wall time.
	Events  uint64
	Tokens  int
	Seconds float64
	// Bytes is the size of the command's JSON output.
	Bytes int64
}

// stateAt asks the dev stack's API for the state of every token now
// (GET /v1/state?at=, what `tokenledger state --at` asks) and times the
// answer until its last byte, written to a file: the server's figure,
// without the command's printing of a million tokens.
func (b *bench) stateAt(ctx context.Context, d *devStack, run int) (stateRun, error) {
	out := filepath.Join(b.work, "data", fmt.Sprintf("state-run%d.json", run))
	defer os.Remove(out)
	f, err := os.OpenFile(out, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return stateRun{}, err
	}
	defer f.Close()
	at := time.Now().UTC().Add(time.Second).Format(time.RFC3339)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.APIURL+"/v1/state?at="+url.QueryEscape(at), nil)
	if err != nil {
		return stateRun{}, err
	}
	req.Header.Set("Authorization", "Bearer "+d.Admin)
	client := &http.Client{Timeout: 5 * time.Minute}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return stateRun{}, fmt.Errorf("GET /v1/state: %w", err)
	}
	n, err := io.Copy(f, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return stateRun{}, fmt.Errorf("GET /v1/state: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return stateRun{}, fmt.Errorf("GET /v1/state: %s", resp.Status)
	}
	r := stateRun{Seconds: took.Seconds(), Bytes: n}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return r, err
	}
	var st struct {
		Sequence uint64            `json:"sequence"`
		Items    []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(f).Decode(&st); err != nil {
		return r, fmt.Errorf("GET /v1/state: %w", err)
	}
	r.Events, r.Tokens = st.Sequence, len(st.Items)
	return r, nil
}
