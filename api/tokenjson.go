package api

import (
	"strconv"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// appendTokenJSON appends t as encoding/json marshals it (the same members
// in the same order, the same escapes), without reflection: the state of a
// large ledger is a million of them.
func appendTokenJSON(b []byte, t *sdk.Token) []byte {
	b = append(b, `{"id":`...)
	b = domain.AppendJSONString(b, t.ID, true)
	b = append(b, `,"owner":`...)
	b = domain.AppendJSONString(b, t.Owner, true)
	b = append(b, `,"name":`...)
	b = domain.AppendJSONString(b, t.Name, true)
	b = append(b, `,"scopes":`...)
	if t.Scopes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range t.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = domain.AppendJSONString(b, s, true)
		}
		b = append(b, ']')
	}
	b = append(b, `,"kind":`...)
	b = domain.AppendJSONString(b, t.Kind, true)
	b = append(b, `,"status":`...)
	b = domain.AppendJSONString(b, t.Status, true)
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, t.CreatedAt)
	b = append(b, `,"expires_at":`...)
	b = appendJSONTimePtr(b, t.ExpiresAt)
	if t.IdleTimeout != nil {
		b = append(b, `,"idle_timeout":`...)
		b = domain.AppendJSONString(b, time.Duration(*t.IdleTimeout).String(), true)
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
		b = domain.AppendJSONString(b, *t.RotatedFrom, true)
	}
	if t.RotatedTo != nil {
		b = append(b, `,"rotated_to":`...)
		b = domain.AppendJSONString(b, *t.RotatedTo, true)
	}
	if t.Family != nil {
		b = append(b, `,"family":`...)
		b = domain.AppendJSONString(b, *t.Family, true)
	}
	if len(t.AllowedCIDRs) > 0 {
		b = append(b, `,"allowed_cidrs":[`...)
		for i, c := range t.AllowedCIDRs {
			if i > 0 {
				b = append(b, ',')
			}
			b = domain.AppendJSONString(b, c, true)
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
			b = domain.AppendJSONString(b, u.Addr, true)
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
	return domain.AppendJSONString(b, *s, true)
}
