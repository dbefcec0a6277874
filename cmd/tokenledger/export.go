package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/cmd/tokenledger/internal/progress"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/export"
	"github.com/tokenledger/tokenledger/natsconn"
)

// exportConnection is where export and export verify --against read the
// streams: the NATS URL and the store settings, as for rebuild.
type exportConnection struct {
	natsURL string
	auth    natsconn.Auth
	store   eventstore.Config
}

func (c *exportConnection) bind(f *pflag.FlagSet) {
	bindNATSFlags(f, &c.natsURL, &c.auth)
	bindStoreFlags(f, &c.store)
}

// open connects to NATS and opens the event store; the returned function
// closes both.
func (c *exportConnection) open(ctx context.Context, name string) (*eventstore.Store, func(), error) {
	if c.natsURL == "" {
		return nil, nil, errors.New("--nats-url (TOKENLEDGER_NATS_URL) must be set")
	}
	if err := c.auth.Validate(c.natsURL); err != nil {
		return nil, nil, err
	}
	nc, err := natsconn.Connect(c.natsURL, c.auth, nats.Name(name))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	store, err := eventstore.OpenExisting(ctx, js, domain.NewDefaultRegistry(), c.store)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return store, func() { _ = store.Close(); nc.Close() }, nil
}

func newExportCommand() *cobra.Command {
	conn := exportConnection{natsURL: app.DefaultNATSURL, store: eventstore.DefaultConfig()}
	var (
		from, to, owner, types, format, out, keyPath string
		includeUsage, unsigned                       bool
		ownerCache                                   = export.DefaultOwnerCache
		progressFlag                                 = "auto"
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a signed, verifiable export of the ledger's events",
		Long: `export writes the events whose time is in [--from, --to) to --out, as JSON
lines or CSV, with FILE.manifest.json next to it: the filter, the counts per
type, the first and last stream sequences, the file's SHA-256, the head of a
hash chain over the records and an Ed25519 signature (--key, made with
"tokenledger export keygen"). "tokenledger export verify" checks all of it.

--owner keeps the owner's events and those of its tokens; --types keeps the
given event types (comma-separated: token.issued.v1, token.expiry_set.v1,
token.revoked.v1, owner.tokens_revoked.v1, and usage.batch.v1 and
token.used.v1 with --include-usage; a usage batch is exported as one
record per token it holds). Times are RFC 3339 (2026-01-02T15:04:05Z), dates
(2026-01-02, midnight UTC), "now" or relative to now ("-30d"), to the
microsecond at most.

export reads the streams from NATS directly, from their start through their
last sequence when it begins (event times do not follow stream order
strictly), in constant memory whatever their length. Each record has the
stream sequence, event id, time, type, token id, owner, actor, correlation
id, reason, the payload's fields (never the secret nor its hash) and the
chain's previous value. CSV fields that a spreadsheet would take for a
formula (= + - @ tab CR) get an apostrophe in front, and fields starting with
an apostrophe one more: remove one leading apostrophe to get the value.
Progress goes to stderr (a bar on a terminal, a line every five seconds
otherwise); the summary goes to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := exportFilter(from, to, owner, types, format, includeUsage)
			if err != nil {
				return err
			}
			if out == "" {
				return errors.New("--out must name the data file to write")
			}
			opts := export.Options{Filter: f, Unsigned: unsigned, OwnerCache: ownerCache}
			switch {
			case keyPath != "" && unsigned:
				return errors.New("--key and --unsigned exclude each other")
			case keyPath != "":
				if opts.Key, err = export.LoadPrivateKey(keyPath); err != nil {
					return err
				}
				exportWarnKeyMode(cmd.ErrOrStderr(), keyPath)
			case !unsigned:
				return errors.New("a signing key is required: --key KEYFILE (make one with \"tokenledger export keygen\"), or --unsigned for an export without a signature")
			}
			mode, err := parseProgressMode(progressFlag, os.Stderr)
			if err != nil {
				return err
			}
			store, closeStore, err := conn.open(cmd.Context(), "tokenledger-export")
			if err != nil {
				return oneLine(err)
			}
			defer closeStore()
			bar := startExportProgress(cmd.ErrOrStderr(), mode, "export", "events")
			opts.Progress = bar.update
			res, err := export.Export(cmd.Context(), store, out, opts)
			bar.stop()
			if err != nil {
				return oneLine(err)
			}
			m := res.Manifest
			signed := "signed with key " + m.KeyID
			if m.Unsigned {
				signed = "UNSIGNED"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %s records to %s (%s events read in %.2f s: %s events/s); manifest %s, %s\n",
				export.Count(m.Records), out, export.Count(res.Scanned), res.Elapsed.Seconds(),
				export.Count(uint64(res.Rate())), export.ManifestPath(out), signed)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "start of the time range, inclusive (required): "+timeHelp)
	fl.StringVar(&to, "to", "", "end of the time range, exclusive (required): "+timeHelp)
	fl.StringVar(&owner, "owner", "", "keep only this owner's events and its tokens' events")
	fl.StringVar(&types, "types", "", "keep only these event types, comma-separated (default: all)")
	fl.BoolVar(&includeUsage, "include-usage", false, "include usage events (usage.batch.v1, token.used.v1) from the usage stream")
	fl.StringVar(&format, "format", "jsonl", "data file format: jsonl or csv")
	fl.StringVar(&out, "out", "", "data file to write; the manifest is written to FILE.manifest.json (required)")
	fl.StringVar(&keyPath, "key", "", "Ed25519 private key (PEM PKCS #8) signing the manifest")
	fl.BoolVar(&unsigned, "unsigned", false, "write the manifest without a signature (verification then fails unless --allow-unsigned)")
	fl.IntVar(&ownerCache, "owner-cache", ownerCache, "tokens whose owner is kept in memory (about 100 bytes each); a token evicted costs one read of its token.issued event")
	exportMarkRequestFlags(cmd)
	conn.bind(fl)
	fl.StringVar(&progressFlag, "progress", progressFlag, "progress display: auto (a bar on a terminal, lines otherwise), bar, lines or off")
	cmd.AddCommand(newExportKeygenCommand(), newExportVerifyCommand())
	return cmd
}

func newExportKeygenCommand() *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make the Ed25519 key pair that signs exports",
		Long: `keygen writes a new Ed25519 key pair: PREFIX.key, the private key (PEM
PKCS #8, mode 0600), which export --key signs with, and PREFIX.pub, the public
key (PEM PKIX), which export verify --pubkey checks with. It refuses to
overwrite either file. The key id it prints (the first 16 hex digits of the
SHA-256 of the public key) is what manifests name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if prefix == "" {
				return errors.New("--out must give the key files' prefix")
			}
			pub, priv, err := export.GenerateKeyPair(nil)
			if err != nil {
				return err
			}
			if err := export.WriteKeyPair(prefix, priv); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (private: keep it secret) and %s; key id %s\n",
				prefix+export.PrivateKeySuffix, prefix+export.PublicKeySuffix, export.KeyID(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "out", "", "prefix of the key files: PREFIX.key and PREFIX.pub (required)")
	exportMarkRequestFlags(cmd)
	return cmd
}

func newExportVerifyCommand() *cobra.Command {
	conn := exportConnection{natsURL: app.DefaultNATSURL, store: eventstore.DefaultConfig()}
	var (
		pubPath       string
		allowUnsigned bool
		against       bool
		maxProblems   = export.DefaultMaxProblems
		ownerCache    = export.DefaultOwnerCache
		progressFlag  = "auto"
	)
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an export against its manifest (and the live stream)",
		Long: `verify checks the export FILE against FILE.manifest.json: the manifest's
signature (with --pubkey; without it the signature cannot be checked, which
fails), the data file's SHA-256, the hash chain record by record, that each
stream's sequences strictly increase, that every record is within the
export's time range and filter, and the counts per type and in all. An
unsigned export fails unless --allow-unsigned.

--against also reads the same streams, range and filter from NATS (up to the
sequences the export read) and reports every event missing from the export,
every record that is not in the stream, and every record that differs from
its event: the only way to catch an export that was altered and then
re-chained and re-signed with the key. Usage events that have aged out of the
usage stream since the export was made are reported as not in the stream.

It prints one line per problem, naming what is wrong and where (the
problems about the whole file, then the first --max-problems about single
records and a count of the rest), and exits non-zero if there is any.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := export.VerifyOptions{AllowUnsigned: allowUnsigned, MaxProblems: maxProblems, OwnerCache: ownerCache}
			if pubPath != "" {
				pub, err := export.LoadPublicKey(pubPath)
				if err != nil {
					return err
				}
				opts.PublicKey = pub
			}
			mode, err := parseProgressMode(progressFlag, os.Stderr)
			if err != nil {
				return err
			}
			if against {
				store, closeStore, err := conn.open(cmd.Context(), "tokenledger-export-verify")
				if err != nil {
					return oneLine(err)
				}
				defer closeStore()
				opts.Against = store
			}
			bar := startExportProgress(cmd.ErrOrStderr(), mode, "verify", "bytes")
			opts.Progress = bar.update
			rep, err := export.Verify(cmd.Context(), args[0], opts)
			bar.stop()
			w := cmd.OutOrStdout()
			for _, p := range rep.Problems {
				fmt.Fprintln(w, p.Message)
			}
			if n := rep.Omitted(); n > 0 {
				fmt.Fprintf(w, "... and %s more problems\n", export.Count(uint64(n)))
			}
			if err != nil {
				return oneLine(err)
			}
			if !rep.OK() {
				return fmt.Errorf("%s: verification failed: %s", args[0], exportPlural(rep.Total, "problem"))
			}
			m := rep.Manifest
			how := "signed by key " + m.KeyID
			if rep.Unsigned {
				how = "UNSIGNED (accepted by --allow-unsigned)"
			}
			fmt.Fprintf(w, "OK: %s, %s records, chain head %s, %s", args[0], export.Count(rep.Records), m.Chain.Head, how)
			if rep.Compared {
				fmt.Fprintf(w, "; matches the %s stream through sequence %d", m.Lifecycle.Stream, m.Lifecycle.ScannedThrough)
				if m.Usage != nil {
					fmt.Fprintf(w, " and the %s stream through sequence %d", m.Usage.Stream, m.Usage.ScannedThrough)
				}
			}
			fmt.Fprintln(w)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&pubPath, "pubkey", "", "Ed25519 public key (PEM PKIX) to check the manifest's signature with")
	fl.BoolVar(&allowUnsigned, "allow-unsigned", false, "accept an export without a signature")
	fl.BoolVar(&against, "against", false, "also compare the export with the live stream (connects to --nats-url)")
	fl.IntVar(&maxProblems, "max-problems", maxProblems, "most problems about single records to list; the others are counted")
	fl.IntVar(&ownerCache, "owner-cache", ownerCache, "with --against: tokens whose owner is kept in memory")
	exportMarkRequestFlags(cmd)
	conn.bind(fl)
	fl.StringVar(&progressFlag, "progress", progressFlag, "progress display: auto (a bar on a terminal, lines otherwise), bar, lines or off")
	return cmd
}

// exportMarkRequestFlags marks the flags cmd has so far as request flags:
// they take no TOKENLEDGER_* variable (an exported TOKENLEDGER_OWNER must
// not narrow an export). The connection and progress flags, bound after,
// are configuration.
func exportMarkRequestFlags(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		_ = cmd.Flags().SetAnnotation(f.Name, requestFlagAnnotation, []string{"true"})
	})
}

// exportFilter builds the filter from the flags.
func exportFilter(from, to, owner, types, format string, includeUsage bool) (export.Filter, error) {
	var errs []error
	f := export.Filter{Owner: domain.OwnerID(owner), IncludeUsage: includeUsage, Format: export.Format(format)}
	var err error
	if f.From, err = exportParseTime("--from", from); err != nil {
		errs = append(errs, err)
	}
	if f.To, err = exportParseTime("--to", to); err != nil {
		errs = append(errs, err)
	}
	for t := range strings.SplitSeq(types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			f.Types = append(f.Types, domain.EventType(t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return f, err
	}
	if err := f.Validate(); err != nil {
		return f, oneLine(err)
	}
	return f, nil
}

// exportParseTime parses a time as every command reads one
// (domain.ParseTime).
func exportParseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s is required", flag)
	}
	// now to the microsecond, as export filters are: "now" and "-2h" are
	// valid bounds.
	t, err := domain.ParseTime(s, time.Now().Truncate(time.Microsecond))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", flag, err)
	}
	return t, nil
}

// exportWarnKeyMode warns when the private key file can be read by others
// than its owner.
func exportWarnKeyMode(w io.Writer, path string) {
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(w, "warning: the private key %s can be read by others than its owner (mode %v); chmod 600 it\n", path, info.Mode().Perm())
	}
}

func exportPlural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return export.Count(uint64(n)) + " " + what + "s"
}

// exportProgress shows an export's or a verification's progress on stderr.
type exportProgress struct {
	meter *progress.Meter
	rep   *progress.Reporter
}

func startExportProgress(w io.Writer, mode progressMode, label, unit string) *exportProgress {
	if mode == progressOff {
		return &exportProgress{}
	}
	m := progress.NewMeter(0)
	return &exportProgress{meter: m, rep: progress.Start(w, m, progress.Options{Label: label, Unit: unit, Terminal: mode == progressBar})}
}

func (p *exportProgress) update(done, total uint64) {
	if p.meter != nil {
		p.meter.SetTotal(total)
		p.meter.Set(done)
	}
}

func (p *exportProgress) stop() {
	if p.rep != nil {
		p.rep.Stop()
	}
}
