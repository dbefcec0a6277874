package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/export"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// exportRootCommand is the root command with the export commands, as
// `tokenledger` runs them (environment included).
func exportRootCommand() *cobra.Command {
	root := newRootCommand()
	for _, c := range root.Commands() {
		if c.Name() == "export" {
			return root
		}
	}
	root.AddCommand(newExportCommand())
	return root
}

type exportRun struct {
	stdout, stderr string
	err            error
}

// runExportCLI runs `tokenledger args...` in the test's process.
func runExportCLI(t *testing.T, args ...string) exportRun {
	t.Helper()
	root := exportRootCommand()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return exportRun{out.String(), errb.String(), err}
}

// exportStack is a nats-server holding a lifecycle history of n events.
func exportStack(t *testing.T, n int) (natsURL string, events []domain.Envelope) {
	t.Helper()
	natsURL = stacktest.NATSProcess(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := eventstore.Open(context.Background(), nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	events = lifecycleHistory(71, n)[:n]
	if err := appendBatched(context.Background(), store, events); err != nil {
		t.Fatal(err)
	}
	return natsURL, events
}

var (
	exportSummary = regexp.MustCompile(`^exported ([\d,]+) records to (\S+) \(([\d,]+) events read in [\d.]+ s: [\d,]+ events/s\); manifest (\S+), (signed with key [0-9a-f]{16}|UNSIGNED)\n$`)
	keygenSummary = regexp.MustCompile(`^wrote (\S+\.key) \(private: keep it secret\) and (\S+\.pub); key id ([0-9a-f]{16})\n$`)
)

// The export commands end to end: keygen, export (JSONL and CSV, with
// filters), verify (alone and against the stream), and the failures a
// tampered or unsigned export gives, each with its message and a non-zero
// exit.
func TestExportCommand(t *testing.T) {
	t.Parallel()
	natsURL, events := exportStack(t, 600)
	dir := t.TempDir()
	prefix := filepath.Join(dir, "audit")
	r := runExportCLI(t, "export", "keygen", "--out", prefix)
	m := keygenSummary.FindStringSubmatch(r.stdout)
	if r.err != nil || m == nil {
		t.Fatalf("keygen: %v; stdout %q", r.err, r.stdout)
	}
	keyID := m[3]
	if r := runExportCLI(t, "export", "keygen", "--out", prefix); r.err == nil || !strings.Contains(r.err.Error(), "already exists") {
		t.Fatalf("keygen over an existing pair: %v", r.err)
	}

	jsonl := filepath.Join(dir, "ledger.jsonl")
	r = runExportCLI(t, "export", "--nats-url", natsURL, "--from", "2000-01-01", "--to", "2200-01-01T00:00:00Z",
		"--out", jsonl, "--key", prefix+".key", "--progress", "lines")
	if r.err != nil {
		t.Fatalf("export: %v; stderr:\n%s", r.err, r.stderr)
	}
	if m := exportSummary.FindStringSubmatch(r.stdout); m == nil || m[1] != "600" || m[5] != "signed with key "+keyID {
		t.Fatalf("export summary %q does not match %s with 600 records signed with key %s", r.stdout, exportSummary, keyID)
	}
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("--progress lines wrote terminal control characters: %q", r.stderr)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		ok      bool
		wantOut []string
		wantErr string
	}{
		{"signed", []string{jsonl, "--pubkey", prefix + ".pub"}, true,
			[]string{"OK: " + jsonl + ", 600 records, chain head ", "signed by key " + keyID}, ""},
		{"against the stream", []string{jsonl, "--pubkey", prefix + ".pub", "--against", "--nats-url", natsURL}, true,
			[]string{"OK: ", "matches the TOKENLEDGER stream through sequence 600"}, ""},
		{"without the public key", []string{jsonl}, false,
			[]string{"manifest signature not checked: no public key given (the manifest names key " + keyID + ")"}, "verification failed: 1 problem"},
	} {
		t.Run("verify "+tc.name, func(t *testing.T) {
			r := runExportCLI(t, append([]string{"export", "verify", "--progress", "off"}, tc.args...)...)
			if (r.err == nil) != tc.ok {
				t.Fatalf("verify: error %v, want ok %t; stdout:\n%s", r.err, tc.ok, r.stdout)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			if tc.wantErr != "" && !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Errorf("error %q lacks %q", r.err, tc.wantErr)
			}
		})
	}

	t.Run("tampered", func(t *testing.T) {
		b, err := os.ReadFile(jsonl)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(b, []byte("\n"))
		lines[99] = bytes.Replace(lines[99], []byte(`"actor":"`), []byte(`"actor":"x`), 1)
		tampered := filepath.Join(t.TempDir(), "ledger.jsonl")
		if err := os.WriteFile(tampered, bytes.Join(lines, nil), 0o644); err != nil {
			t.Fatal(err)
		}
		mb, _ := os.ReadFile(export.ManifestPath(jsonl))
		if err := os.WriteFile(export.ManifestPath(tampered), mb, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runExportCLI(t, "export", "verify", tampered, "--pubkey", prefix+".pub", "--progress", "off")
		if r.err == nil || !strings.Contains(r.err.Error(), "verification failed: 2 problems") {
			t.Fatalf("verify of a tampered export: %v; stdout:\n%s", r.err, r.stdout)
		}
		for _, s := range []string{"data file SHA-256 mismatch", "line 101: hash chain broken: the record does not continue line 100"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
			}
		}
	})

	t.Run("unsigned", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ledger.csv")
		r := runExportCLI(t, "export", "--nats-url", natsURL, "--from", "2000-01-01", "--to", "2200-01-01", "--format", "csv",
			"--out", path, "--unsigned", "--progress", "off")
		if r.err != nil || !strings.HasSuffix(r.stdout, ", UNSIGNED\n") {
			t.Fatalf("unsigned export: %v; stdout %q", r.err, r.stdout)
		}
		r = runExportCLI(t, "export", "verify", path, "--pubkey", prefix+".pub", "--progress", "off")
		if r.err == nil || !strings.Contains(r.stdout, "unsigned: the export has no signature") {
			t.Fatalf("verify of an unsigned export: %v; stdout:\n%s", r.err, r.stdout)
		}
		r = runExportCLI(t, "export", "verify", path, "--allow-unsigned", "--against", "--nats-url", natsURL, "--progress", "off")
		if r.err != nil || !strings.Contains(r.stdout, "UNSIGNED (accepted by --allow-unsigned); matches the TOKENLEDGER stream") {
			t.Fatalf("verify --allow-unsigned: %v; stdout:\n%s", r.err, r.stdout)
		}
	})

	t.Run("filtered", func(t *testing.T) {
		var owner domain.OwnerID
		want := 0
		owners := map[string]domain.OwnerID{}
		for _, e := range events {
			if d, ok := e.Data.(domain.TokenIssued); ok {
				owners[e.AggregateID] = d.Owner
				if owner == "" {
					owner = d.Owner
				}
			}
			if e.Type == domain.TypeTokenRevoked && owners[e.AggregateID] == owner {
				want++
			}
		}
		if want == 0 {
			t.Fatalf("the history has no token.revoked.v1 event of %s", owner)
		}
		path := filepath.Join(t.TempDir(), "revoked.csv")
		r := runExportCLI(t, "export", "--nats-url", natsURL, "--from", "2000-01-01", "--to", "2200-01-01", "--format", "csv",
			"--owner", string(owner), "--types", "token.revoked.v1", "--out", path, "--key", prefix+".key", "--progress", "off")
		if m := exportSummary.FindStringSubmatch(r.stdout); r.err != nil || m == nil || m[1] != strconv.Itoa(want) {
			t.Fatalf("filtered export: %v; stdout %q; want %d records", r.err, r.stdout, want)
		}
		r = runExportCLI(t, "export", "verify", path, "--pubkey", prefix+".pub", "--against", "--nats-url", natsURL, "--progress", "off")
		if r.err != nil {
			t.Fatalf("verify --against of the filtered export: %v; stdout:\n%s", r.err, r.stdout)
		}
	})
}

// The export command refuses what it cannot do, saying why, before
// connecting anywhere.
func TestExportCommandRefuses(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "k")
	_, priv, err := export.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := export.WriteKeyPair(key, priv); err != nil {
		t.Fatal(err)
	}
	base := []string{"export", "--nats-url", "nats://127.0.0.1:1", "--out", filepath.Join(t.TempDir(), "x"), "--progress", "off"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"--from", "2026-01-01", "--to", "2026-02-01"}, "a signing key is required: --key KEYFILE"},
		{"key and unsigned", []string{"--from", "2026-01-01", "--to", "2026-02-01", "--key", key + ".key", "--unsigned"}, "--key and --unsigned exclude each other"},
		{"no from", []string{"--to", "2026-02-01", "--unsigned"}, "--from is required"},
		{"bad time", []string{"--from", "yesterday", "--to", "2026-02-01", "--unsigned"}, `--from: time "yesterday": want an RFC 3339 time`},
		{"empty range", []string{"--from", "2026-02-01", "--to", "2026-02-01", "--unsigned"}, "is not before to"},
		{"unknown type", []string{"--from", "2026-01-01", "--to", "2026-02-01", "--types", "token.issued.v1,token.lost.v1", "--unsigned"}, `unknown event type "token.lost.v1"`},
		{"usage type without usage", []string{"--from", "2026-01-01", "--to", "2026-02-01", "--types", "token.used.v1", "--unsigned"}, "needs include usage"},
		{"bad format", []string{"--from", "2026-01-01", "--to", "2026-02-01", "--format", "xml", "--unsigned"}, `format "xml"`},
		{"public key as private key", []string{"--from", "2026-01-01", "--to", "2026-02-01", "--key", key + ".pub"}, `want "PRIVATE KEY"`},
		{"nats unreachable", []string{"--from", "2026-01-01", "--to", "2026-02-01", "--unsigned"}, "connect to nats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runExportCLI(t, append(slices.Clone(base), tc.args...)...)
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", r.err, tc.want)
			}
		})
	}
}

// Export's connection flags take their TOKENLEDGER_* variables, as every
// command's configuration does; its request flags (--owner, ...) do not,
// so an exported TOKENLEDGER_OWNER cannot narrow an export.
func TestExportCommandEnvironment(t *testing.T) {
	natsURL, _ := exportStack(t, 50)
	t.Setenv("TOKENLEDGER_NATS_URL", natsURL)
	t.Setenv("TOKENLEDGER_OWNER", "nobody")
	t.Setenv("TOKENLEDGER_TYPES", "token.revoked.v1")
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	r := runExportCLI(t, "export", "--from", "2000-01-01", "--to", "2200-01-01", "--out", path, "--unsigned", "--progress", "off")
	if m := exportSummary.FindStringSubmatch(r.stdout); r.err != nil || m == nil || m[1] != "50" {
		t.Fatalf("export with TOKENLEDGER_NATS_URL, _OWNER and _TYPES set: %v; stdout %q; want all 50 records", r.err, r.stdout)
	}
}
