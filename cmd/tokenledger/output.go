package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// Output formats of --output.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// printer writes a command's result in the chosen format: a table or
// prose for people, or one indented JSON document of the sdk types.
type printer struct {
	w    io.Writer
	json bool
	// now is the instant relative times ("3 minutes ago") are told from.
	now time.Time
}

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// tokens prints a list of tokens; next is the cursor of the next page, ""
// on the last page or when every page was fetched.
func (p printer) tokens(items []sdk.Token, next string) error {
	if items == nil {
		items = []sdk.Token{}
	}
	if p.json {
		return writeJSON(p.w, sdk.TokenPage{Items: items, NextCursor: next})
	}
	if err := writeTokenTable(p.w, items, p.now); err != nil {
		return err
	}
	if next != "" {
		_, err := fmt.Fprintf(p.w, "More tokens: add --cursor %s (or --all).\n", next)
		return err
	}
	return nil
}

// token prints one token with every field.
func (p printer) token(t sdk.Token) error {
	if p.json {
		return writeJSON(p.w, t)
	}
	return writeTokenDetail(p.w, t, p.now)
}

// secretBanner introduces the secret of an issue or a rotation.
const secretBanner = "Token (shown once, store it now): "

// issued prints a newly issued token: its secret, once, and its metadata.
func (p printer) issued(t sdk.IssuedToken) error {
	if p.json {
		return writeJSON(p.w, t)
	}
	if _, err := fmt.Fprintf(p.w, "%s%s\n\n", secretBanner, t.Secret); err != nil {
		return err
	}
	return writeTokenDetail(p.w, t.TokenMetadata, p.now)
}

// rotated prints a rotation: the new token as for an issue, and when the
// old one expires.
func (p printer) rotated(t sdk.RotatedToken) error {
	if p.json {
		return writeJSON(p.w, t)
	}
	if err := p.issued(t.IssuedToken); err != nil {
		return err
	}
	old := "The previous token"
	if t.RotatedFrom != nil {
		old += " " + cell(*t.RotatedFrom)
	}
	_, err := fmt.Fprintf(p.w, "\n%s %s (%s).\n", old, expiryText(&t.PreviousExpiresAt, p.now), timestamp(t.PreviousExpiresAt))
	return err
}

// revokeResult is the JSON document of `token revoke ID`, whose API answer
// has no body.
type revokeResult struct {
	ID      string `json:"id"`
	Revoked bool   `json:"revoked"`
}

// revoked prints the revocation of a token by its id.
func (p printer) revoked(id string) error {
	if p.json {
		return writeJSON(p.w, revokeResult{ID: id, Revoked: true})
	}
	_, err := fmt.Fprintf(p.w, "Token %s revoked.\n", cell(id))
	return err
}

// secretRevoked prints the answer to the revocation of a secret, which by
// design says nothing of whether the secret was a token.
func (p printer) secretRevoked() error {
	if p.json {
		return writeJSON(p.w, struct{}{})
	}
	_, err := fmt.Fprintln(p.w, "Revocation recorded. The server answers alike for unknown secrets, so this does not confirm the secret was a token.")
	return err
}

// ownerRevoked prints an owner-wide revocation.
func (p printer) ownerRevoked(r sdk.OwnerRevocation) error {
	if p.json {
		return writeJSON(p.w, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Owner %s: every token issued before %s is revoked.\n", cell(r.Owner), timestamp(r.RevokedBefore))
	if r.Until != nil {
		fmt.Fprintf(&b, "No new token until %s (%s).\n", timestamp(*r.Until), relativeTime(*r.Until, p.now))
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", cell(r.Reason))
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

// writeTokenTable writes tokens as a table, one line each, times told
// relative to now.
func writeTokenTable(w io.Writer, tokens []sdk.Token, now time.Time) error {
	if len(tokens) == 0 {
		_, err := fmt.Fprintln(w, "No tokens.")
		return err
	}
	var tb table
	tb.row("ID", "OWNER", "NAME", "KIND", "STATUS", "SCOPES", "LAST USE", "EXPIRY")
	for _, t := range tokens {
		tb.row(cell(t.ID), cell(t.Owner), cell(t.Name), cell(t.Kind), cell(t.Status), scopesCell(t.Scopes),
			lastUsedText(t.LastUsedAt, now), expiryText(t.ExpiresAt, now))
	}
	return tb.write(w)
}

// writeTokenDetail writes every field of a token, one per line.
func writeTokenDetail(w io.Writer, t sdk.Token, now time.Time) error {
	var tb table
	row := func(label, value string) { tb.row(label+":", value) }
	row("ID", cell(t.ID))
	row("Owner", cell(t.Owner))
	row("Name", cell(t.Name))
	row("Kind", cell(t.Kind))
	row("Status", cell(t.Status))
	row("Scopes", scopesCell(t.Scopes))
	row("Created", timestamp(t.CreatedAt)+" ("+relativeTime(past(t.CreatedAt, now), now)+")")
	if t.ExpiresAt != nil {
		row("Expires", timestamp(*t.ExpiresAt)+" ("+expiryText(t.ExpiresAt, now)+")")
	} else {
		row("Expires", expiryText(nil, now))
	}
	if t.IdleTimeout != nil {
		row("Idle timeout", span(time.Duration(*t.IdleTimeout)))
	} else {
		row("Idle timeout", "-")
	}
	row("Absolute expiry", optionalTime(t.AbsoluteExpiresAt, now))
	if t.LastUsedAt != nil {
		row("Last used", timestamp(*t.LastUsedAt)+" ("+relativeTime(past(*t.LastUsedAt, now), now)+")")
	} else {
		row("Last used", lastUsedText(nil, now))
	}
	row("Use count", strconv.FormatUint(t.UseCount, 10))
	row("Revoked", optionalTime(t.RevokedAt, now))
	reason := "-"
	if t.RevokedReason != nil {
		reason = cell(*t.RevokedReason)
	}
	row("Revoked reason", reason)
	row("Owner revoked", yesNo(t.OwnerRevoked))
	row("Rotated from", optionalString(t.RotatedFrom))
	row("Rotated to", optionalString(t.RotatedTo))
	row("Family", optionalString(t.Family))
	if len(t.AllowedCIDRs) > 0 {
		row("Networks", cell(strings.Join(t.AllowedCIDRs, ", ")))
	} else {
		row("Networks", "any")
	}
	if len(t.LastUsedIPs) == 0 {
		row("Used from", "-")
	}
	for i, u := range t.LastUsedIPs {
		label := ""
		if i == 0 {
			label = "Used from:"
		}
		tb.row(label, cell(u.Addr)+" "+timestamp(u.LastUsedAt)+" ("+relativeTime(past(u.LastUsedAt, now), now)+")")
	}
	return tb.write(w)
}

// lastUsedText is "last used 3 minutes ago", or "never used" for a nil t.
func lastUsedText(t *time.Time, now time.Time) string {
	if t == nil {
		return "never used"
	}
	return "last used " + relativeTime(past(*t, now), now)
}

// expiryText is "expires in 12 days" or "expired 2 hours ago" as t is
// after now or not, or "does not expire" for a nil t.
func expiryText(t *time.Time, now time.Time) string {
	switch {
	case t == nil:
		return "does not expire"
	case t.After(now):
		return "expires " + relativeTime(*t, now)
	default:
		return "expired " + relativeTime(*t, now)
	}
}

// relativeTime tells t as seen from now: "just now" and "in less than a
// minute" within a minute, then as span tells a length of time: "3 minutes
// ago", "1 day 23 hours ago", "in 30 days".
func relativeTime(t, now time.Time) string {
	d := now.Sub(t)
	if d >= 0 {
		if d < time.Minute {
			return "just now"
		}
		return span(d) + " ago"
	}
	d = -d
	if d < time.Minute {
		return "in less than a minute"
	}
	return "in " + span(d)
}

// spanTwoUnits is the count of a span's larger unit below which span adds
// the next smaller unit: "9 days 11 hours", but "12 days".
const spanTwoUnits = 10

// span tells d, at least a minute, for people: in minutes, hours or days,
// with the next smaller unit while the larger count is below spanTwoUnits
// ("1 day 23 hours", "2 hours 5 minutes"), the last unit shown rounded to
// the nearest: a token that expires in 47 h 59 min 59 s expires "in 2
// days", never "in 1 day", and a fresh 30-day token "in 30 days".
func span(d time.Duration) string {
	if m := d.Round(time.Minute); m < time.Hour {
		return plural(uint64(m/time.Minute), "minute")
	}
	h := d.Round(time.Hour)
	switch {
	case h < spanTwoUnits*time.Hour:
		return twoUnits(d.Round(time.Minute), time.Hour, "hour", time.Minute, "minute")
	case h < domain.Day:
		return plural(uint64(h/time.Hour), "hour")
	}
	if days := d.Round(domain.Day); days >= spanTwoUnits*domain.Day {
		return plural(uint64(days/domain.Day), "day")
	}
	return twoUnits(h, domain.Day, "day", time.Hour, "hour")
}

// twoUnits tells d, a whole number of small, as a count of big and of
// small: "1 day 23 hours", or "2 days" when no small is left over.
func twoUnits(d, big time.Duration, bigName string, small time.Duration, smallName string) string {
	n, rest := d/big, (d%big)/small
	if rest == 0 {
		return plural(uint64(n), bigName)
	}
	return plural(uint64(n), bigName) + " " + plural(uint64(rest), smallName)
}

// past keeps a time that can only be past (a creation, a last use) from
// reading as future when the server's clock runs ahead of this one.
func past(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

// timestamp writes t in RFC 3339, UTC, to the second.
func timestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

func optionalTime(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return timestamp(*t) + " (" + relativeTime(*t, now) + ")"
}

func optionalString(s *string) string {
	if s == nil {
		return "-"
	}
	return cell(*s)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func scopesCell(scopes []string) string {
	if len(scopes) == 0 {
		return "-"
	}
	cells := make([]string, len(scopes))
	for i, s := range scopes {
		cells[i] = cell(s)
	}
	return strings.Join(cells, ",")
}

// cell renders a value that came from the server for a terminal: "-" when
// empty, and Go-quoted when it holds a control or unprintable character,
// so that no value can break a table's layout or send escape sequences to
// the terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
