package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/version"
)

// tokenEnv holds the caller's token for the commands that call the API. It
// is read from the environment only, never from a flag, so that the secret
// stays out of shell history and process listings.
const tokenEnv = envPrefix + "TOKEN"

// defaultServer is where `tokenledger serve` and `dev` listen by default.
const defaultServer = "http://127.0.0.1:8080"

// requestTimeout bounds each API request of a command, answer included.
const requestTimeout = 30 * time.Second

// stateRequestTimeout bounds `state --at`'s request: the server replays the
// whole stream before it answers, and the answer of a large ledger is
// hundreds of megabytes.
const stateRequestTimeout = 10 * time.Minute

// cliUserAgent is the User-Agent of the commands' requests, with the
// version: "tokenledger-cli/v1.2.3".
var cliUserAgent = "tokenledger-cli/" + version.Get().Version

// maxStdinSecret is the most read from stdin for --secret-stdin: a secret
// is 84 bytes, anything much longer is not one.
const maxStdinSecret = 4096

// clientFlags are the flags of the commands that call a running server:
// where it is, and how to print its answers.
type clientFlags struct {
	server string
	output enumValue
}

// bindClientFlags binds the client flags as persistent flags of a command
// group (token, owner): each of its subcommands takes them.
func bindClientFlags(cmd *cobra.Command, c *clientFlags) {
	c.server = defaultServer
	c.output = enumValue{value: outputTable, allowed: []string{outputTable, outputJSON}}
	f := cmd.PersistentFlags()
	f.StringVar(&c.server, "server", c.server, "base URL of the tokenledger API; the caller's token is read from "+tokenEnv)
	f.Var(&c.output, "output", "output format: table or json")
}

// printer returns the printer of a command's result, to stdout.
func (c *clientFlags) printer(cmd *cobra.Command) printer {
	return printer{w: cmd.OutOrStdout(), json: c.output.value == outputJSON, now: time.Now()}
}

// serverError is the one-line error of a call to the server that failed,
// naming the server: a CLI pointed at the wrong instance must say so, not
// only "connection refused" or "the token is unknown".
// Errors the client finds before sending anything (a secret given as an
// id) are not the server's and say nothing of it.
func (c *clientFlags) serverError(err error) error {
	var apiErr *sdk.Error
	var urlErr *url.Error
	if !errors.As(err, &apiErr) && !errors.As(err, &urlErr) {
		return oneLine(err)
	}
	return fmt.Errorf("%w (server %s)", oneLine(err), c.server)
}

// errNoToken is the one-line error of a command run without a caller's
// token.
var errNoToken = errors.New(tokenEnv + " is not set: export the caller's token in it (it is never taken as a flag)")

// client returns a client of the API that presents the token of
// TOKENLEDGER_TOKEN.
func (c *clientFlags) client() (*sdk.Client, error) {
	return c.clientWithTimeout(requestTimeout)
}

// anonymousClient returns a client of the API that presents no token.
func (c *clientFlags) anonymousClient() (*sdk.Client, error) {
	return c.newClient(requestTimeout)
}

// clientWithTimeout is client with a request timeout of its own.
func (c *clientFlags) clientWithTimeout(timeout time.Duration) (*sdk.Client, error) {
	secret := strings.TrimSpace(os.Getenv(tokenEnv))
	if secret == "" {
		return nil, errNoToken
	}
	if strings.ContainsFunc(secret, unicode.IsControl) {
		return nil, fmt.Errorf("%s holds control characters: want one secret", tokenEnv)
	}
	return c.newClient(timeout, sdk.WithToken(secret))
}

func (c *clientFlags) newClient(timeout time.Duration, opts ...sdk.Option) (*sdk.Client, error) {
	hc := &http.Client{
		Timeout: timeout,
		// A redirect would re-send a secret carried in a body to wherever
		// it points: report it instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	opts = append(opts, sdk.WithHTTPClient(hc), sdk.WithUserAgent(cliUserAgent))
	client, err := sdk.New(c.server, opts...)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return client, nil
}

// readSecret reads one secret from r: a single word, surrounding white
// space ignored. The secret never appears in its errors.
func readSecret(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxStdinSecret+1))
	if err != nil {
		return "", fmt.Errorf("read the secret from stdin: %w", err)
	}
	if len(b) > maxStdinSecret {
		return "", fmt.Errorf("stdin holds more than %d bytes: want one secret", maxStdinSecret)
	}
	words := strings.Fields(string(b))
	switch len(words) {
	case 0:
		return "", errors.New("no secret on stdin")
	case 1:
		return words[0], nil
	default:
		return "", fmt.Errorf("stdin holds %d words: want one secret", len(words))
	}
}

// durationHelp and timeHelp say, in flag usages, what a duration and a
// time may be.
const (
	durationHelp = `a duration such as "30d", "2w", "1d12h", "720h", or whole seconds`
	timeHelp     = `RFC 3339 (2026-12-31T23:59:00Z), a date (2026-12-31), "now" or relative to now ("-2h", "+30d")`
)

// durationValue is a flag holding a duration as the API takes it: a Go
// duration ("720h"), days and weeks ("30d", "2w", "1d12h") or whole seconds
// ("3600"), read by domain.ParseDuration.
// It remembers whether it was set.
type durationValue struct {
	d   time.Duration
	set bool
}

func (v *durationValue) String() string {
	if !v.set {
		return ""
	}
	return v.d.String()
}

func (v *durationValue) Set(s string) error {
	d, err := domain.ParseDuration(s)
	if err != nil {
		return err
	}
	v.d, v.set = d, true
	return nil
}

func (v *durationValue) Type() string { return "duration" }

// positive checks a set duration flag is more than zero.
func (v *durationValue) positive(flag string) error {
	if v.set && v.d <= 0 {
		return fmt.Errorf("--%s %s: want a positive duration", flag, v.d)
	}
	return nil
}

// timeValue is a flag holding a time as domain.ParseTime reads it: RFC
// 3339, a date, "now", or relative to now ("-2h", "+30d"). It remembers
// whether it was set.
type timeValue struct {
	t   time.Time
	set bool
}

func (v *timeValue) String() string {
	if !v.set {
		return ""
	}
	return v.t.Format(time.RFC3339Nano)
}

func (v *timeValue) Set(s string) error {
	t, err := domain.ParseTime(s, time.Now())
	if err != nil {
		return err
	}
	v.t, v.set = t, true
	return nil
}

func (v *timeValue) Type() string { return "time" }

// enumValue is a flag taking one of a few words, or, if optional, the
// empty string (no choice).
type enumValue struct {
	value    string
	allowed  []string
	optional bool
}

func (v *enumValue) String() string { return v.value }

func (v *enumValue) Set(s string) error {
	if s == "" && v.optional {
		v.value = ""
		return nil
	}
	for _, a := range v.allowed {
		if s == a {
			v.value = s
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(v.allowed))
}

func (v *enumValue) Type() string { return "string" }

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
