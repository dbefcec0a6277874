package api

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tokenledger/tokenledger/sdk"
)

// appendTokenJSON appends t as encoding/json marshals it (the same members
// in the same order, the same escapes), without reflection: the state of a
// large ledger is a million of them.
func appendTokenJSON(b []byte, t *sdk.Token) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, t.ID)
	b = append(b, `,"owner":`...)
	b = appendJSONString(b, t.Owner)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, t.Name)
	b = append(b, `,"scopes":`...)
	if t.Scopes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range t.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, t.Kind)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, t.Status)
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, t.CreatedAt)
	b = append(b, `,"expires_at":`...)
	b = appendJSONTimePtr(b, t.ExpiresAt)
	if t.IdleTimeout != nil {
		b = append(b, `,"idle_timeout":`...)
		b = appendJSONString(b, time.Duration(*t.IdleTimeout).String())
	}
	if t.AbsoluteExpiresAt != nil {
		b = append(b, `,"absolute_expires_at":`...)
		b = appendJSONTime(b, *t.AbsoluteExpiresAt)
	}
	b = append(b, `,"revoked_at":`...)
	b = appendJSONTimePtr(b, t.RevokedAt)
	b = append(b, `,"revoked_reason":`...)
	b = appendJSONStringPtr(b, t.RevokedReason)
	b = append(b, `,"owner_revoked":`...)
	b = strconv.AppendBool(b, t.OwnerRevoked)
	b = append(b, `,"last_used_at":`...)
	b = appendJSONTimePtr(b, t.LastUsedAt)
	b = append(b, `,"use_count":`...)
	b = strconv.AppendUint(b, t.UseCount, 10)
	if t.UsagePartial {
		b = append(b, `,"usage_partial":true`...)
	}
	if t.RotatedFrom != nil {
		b = append(b, `,"rotated_from":`...)
		b = appendJSONString(b, *t.RotatedFrom)
	}
	if t.RotatedTo != nil {
		b = append(b, `,"rotated_to":`...)
		b = appendJSONString(b, *t.RotatedTo)
	}
	if t.Family != nil {
		b = append(b, `,"family":`...)
		b = appendJSONString(b, *t.Family)
	}
	if len(t.AllowedCIDRs) > 0 {
		b = append(b, `,"allowed_cidrs":[`...)
		for i, c := range t.AllowedCIDRs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, c)
		}
		b = append(b, ']')
	}
	if len(t.LastUsedIPs) > 0 {
		b = append(b, `,"last_used_ips":[`...)
		for i, u := range t.LastUsedIPs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"addr":`...)
			b = appendJSONString(b, u.Addr)
			b = append(b, `,"last_used_at":`...)
			b = appendJSONTime(b, u.LastUsedAt)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds as needed).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendJSONTimePtr(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendJSONTime(b, *t)
}

func appendJSONStringPtr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// appendJSONString appends s as a JSON string with encoding/json's
// escapes: quote, backslash and control characters, <, > and & (HTML
// escaping), U+2028 and U+2029, and invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
