package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/version"
)

// envPrefix prefixes the environment variable of every flag: --data-dir is
// also TOKENLEDGER_DATA_DIR. A flag given on the command line wins over the
// environment.
const envPrefix = "TOKENLEDGER_"

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRootCommand() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:           "tokenledger",
		Short:         "The append-only ledger of API tokens",
		Long:          "tokenledger keeps the complete, append-only history of API tokens and answers\n\"is this token valid, and whose is it?\" in microseconds.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd)
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newDevCommand(&g), newMigrateCommand(&g), newProjectCommand(&g), newRebuildCommand(&g),
		newServeCommand(&g), newTokenCommand(), newOwnerCommand(), newWebhookCommand(), newAdminCommand(&g),
		newHistoryCommand(), newStateCommand(), newExportCommand(), newStreamsCommand(&g), newClusterCommand(&g), newVersionCommand())
	root.Version = version.Get().String()
	root.SetVersionTemplate("tokenledger {{.Version}}\n")
	// Defined here rather than by cobra, so that it is a request flag: no
	// TOKENLEDGER_VERSION applies to it.
	root.Flags().Bool("version", false, "print the version of tokenledger")
	_ = root.Flags().SetAnnotation("version", requestFlagAnnotation, []string{"true"})
	_ = root.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	finishCommandTree(root)
	return root
}

// finishCommandTree gives every command of the tree under root what each
// needs alike, once the tree is built: a command group refuses an unknown
// subcommand (instead of printing its help and succeeding), the usage of
// every configuration flag names its TOKENLEDGER_* variable, and a flag
// taking one of a few words completes those words, not file names.
func finishCommandTree(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.HasSubCommands() && !cmd.Runnable() {
			cmd.SuggestionsMinimumDistance = 2
			cmd.Args = subcommandArgs
			cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if seen[f] {
				return
			}
			seen[f] = true
			if ev, ok := f.Value.(*enumValue); ok {
				_ = cmd.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(ev.allowed, cobra.ShellCompDirectiveNoFileComp))
			}
			if !isRequestFlag(f) {
				f.Usage += " [" + envName(f.Name) + "]"
			}
		})
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// subcommandArgs refuses any argument of a command group: the only words
// after it are its subcommands, so anything else is a typo, answered with
// the subcommands it resembles.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
		return fmt.Errorf("%s: did you mean %s?", msg, orList(near))
	}
	return fmt.Errorf("%s: run %q for its commands", msg, cmd.CommandPath()+" --help")
}

// requestFlagAnnotation marks a flag that is a parameter of one request
// (token issue --name, --reason, ...), not configuration: it takes no
// environment variable, so an exported TOKENLEDGER_NAME meant for another
// command cannot leak into a request.
const requestFlagAnnotation = "tokenledger/request"

// markRequestFlags marks the local flags of every subcommand of cmd as
// request flags.
func markRequestFlags(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		sub.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			_ = sub.Flags().SetAnnotation(f.Name, requestFlagAnnotation, []string{"true"})
		})
		markRequestFlags(sub)
	}
}

func isRequestFlag(f *pflag.Flag) bool {
	_, ok := f.Annotations[requestFlagAnnotation]
	return ok
}

// applyEnv sets every flag of cmd that was not given on the command line
// from its TOKENLEDGER_* environment variable; request flags take none.
func applyEnv(cmd *cobra.Command) error {
	var errs []string
	seen := map[string]bool{}
	visit := func(f *pflag.Flag) {
		if f.Changed || seen[f.Name] || isRequestFlag(f) {
			return
		}
		seen[f.Name] = true
		val, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if err := f.Value.Set(val); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", envName(f.Name), val, err))
			return
		}
		f.Changed = true
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// envName is the environment variable that sets flag name.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// newLogger builds the process logger from the global flags. Logs go to
// stderr; records meant for a person (URLs, the first admin token) go to
// stdout.
func (g *globalFlags) newLogger() (*slog.Logger, error) {
	return g.newLoggerTo(os.Stderr)
}

// newLoggerTo is newLogger writing to w instead of stderr.
func (g *globalFlags) newLoggerTo(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = durationAsText
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
}

// durationAsText writes a duration as Go writes it ("1.5s", "250ms"), as
// the text handler does; the JSON handler would write a bare number of
// nanoseconds that a reader takes for milliseconds or seconds.
func durationAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of tokenledger, the commit it was built from and its Go release",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "tokenledger %s\n", version.Get())
			return err
		},
	}
}
