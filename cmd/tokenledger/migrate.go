package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/app"
)

// defaultConnectTimeout bounds connecting to PostgreSQL and applying the
// migrations in `tokenledger migrate`.
const defaultConnectTimeout = 30 * time.Second

func newMigrateCommand(g *globalFlags) *cobra.Command {
	var (
		postgresURL string
		timeout     = defaultConnectTimeout
	)
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the PostgreSQL read model's schema up to date",
		Long: `migrate applies the schema migrations this binary carries to the database at
--postgres-url, each in its own transaction, and prints the resulting schema
version. It is idempotent, and safe to run from several processes at once (an
advisory lock serialises them). The projection workers and rebuild refuse to
start on an outdated schema.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.newLogger()
			if err != nil {
				return err
			}
			if postgresURL == "" {
				return errors.New("--postgres-url (TOKENLEDGER_POSTGRES_URL) must be set")
			}
			if timeout <= 0 {
				return fmt.Errorf("--migrate-timeout %s must be positive", timeout)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := app.Migrate(ctx, postgresURL)
			if err != nil {
				return oneLine(err)
			}
			log.Info("schema migrated", "from", res.From, "version", res.To)
			if res.From == res.To {
				fmt.Fprintf(cmd.OutOrStdout(), "schema version %d (up to date)\n", res.To)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "schema version %d (migrated from %d)\n", res.To, res.From)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&postgresURL, "postgres-url", postgresURL, "PostgreSQL connection URL of the read model, e.g. postgres://user:pass@host:5432/db (required)")
	f.DurationVar(&timeout, "migrate-timeout", timeout, "give up connecting and migrating after this long")
	return cmd
}

// oneLine keeps an error on one line: some messages span several (one per
// address tried, one per configuration problem), and the command prints
// one line per failure. Lines are joined with "; ".
func oneLine(err error) error {
	msg := err.Error()
	if !strings.ContainsAny(msg, "\r\n") {
		return err
	}
	var b strings.Builder
	for _, line := range strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case b.Len() == 0:
		case strings.HasSuffix(b.String(), ":"):
			b.WriteString(" ")
		default:
			b.WriteString("; ")
		}
		b.WriteString(line)
	}
	return &oneLineError{msg: b.String(), err: err}
}

type oneLineError struct {
	msg string
	err error
}

func (e *oneLineError) Error() string { return e.msg }
func (e *oneLineError) Unwrap() error { return e.err }
