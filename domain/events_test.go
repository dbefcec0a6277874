package domain

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleEvents records one of every kind of event, with every optional
// field used somewhere, through the commands. It returns them and the
// secrets of the tokens involved.
func sampleEvents(t testing.TB) ([]Envelope, []Secret) {
	p := DefaultPolicy()
	p.AllowNeverExpires = true
	clock := NewManualClock(t0.Add(123456789 * time.Nanosecond))
	entropy := seededEntropy(99)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	owner := NewOwner("team ops/ü")
	m := Meta{Actor: "token:01JDTEST", CorrelationID: "req-42"}
	api, apiSecret, err := IssueToken(p, owner, IssueRequest{Owner: "team ops/ü", Name: "deploy bot", Scopes: []string{"repo:write", "read"}, ExpiresIn: time.Hour}, m, clock.Now(), entropy)
	must(err)
	session, sessionSecret, err := IssueToken(p, owner, IssueRequest{Owner: "team ops/ü", Kind: KindSession, IdleTimeout: 10 * time.Minute}, m, clock.Now(), entropy)
	must(err)
	now := clock.Advance(5 * time.Minute)
	must(api.RecordUse(7, now.Add(-time.Minute), now, "203.0.113.9:51234", m, now))
	must(api.SetExpiry(p, ptr(now.Add(2*time.Hour)), m, now))
	must(api.SetExpiry(p, nil, m, now))
	if ok, err := session.ExtendSession(now, time.Minute, m, now); err != nil || !ok {
		t.Fatalf("ExtendSession = %v, %v", ok, err)
	}
	rotated, rotatedSecret, err := Rotate(p, owner, api, time.Minute, nil, m, now, entropy)
	must(err)
	must(session.Revoke("user logged out", m, clock.Advance(time.Minute)))
	must(owner.RevokeFamily(api, SecretReuse{Token: api.ID(), ClientAddr: "203.0.113.9", Route: "GET /v1/auth"}, m, clock.Now()))
	must(owner.RevokeTokens(ptr(clock.Now().Add(24*time.Hour)), "account compromised", m, clock.Now()))
	if ok, err := owner.RecordWebhookDisabled(OwnerWebhookDisabled{Endpoint: "01M81BGGXVD5T3T51JQTHYVCJ1", URL: "https://hooks.example.com/tokenledger?team=ops",
		Event: "01M81BGGXVD5T3T51JQTHYVCJ2", Reason: "delivery of event 01M81BGGXVD5T3T51JQTHYVCJ2 failed for 24h0m0s: HTTP 502 Bad Gateway"},
		Meta{Actor: "system:webhooks"}, clock.Now()); err != nil || !ok {
		t.Fatalf("RecordWebhookDisabled = %v, %v", ok, err)
	}
	batches, err := RecordUsage([]TokenUse{
		{Token: api.ID(), Count: 3, FirstAt: now.Add(-time.Minute), LastAt: now, ClientAddr: "198.51.100.4:443"},
		{Token: session.ID(), Count: 1, FirstAt: now, LastAt: now},
	}, m, now, 0)
	must(err)
	noticed, _, err := IssueToken(p, nil, IssueRequest{Owner: "team ci", Name: "nightly", ExpiresIn: 10 * Day}, m, clock.Now(), entropy)
	must(err)
	notice := Meta{Actor: "system:expiry"}
	if ok, err := noticed.AnnounceExpiry(nil, DefaultExpiryLeads, notice, clock.Advance(4*Day)); err != nil || !ok {
		t.Fatalf("AnnounceExpiry = %v, %v", ok, err)
	}
	if ok, err := noticed.AnnounceExpiry(nil, DefaultExpiryLeads, notice, clock.Advance(7*Day)); err != nil || !ok {
		t.Fatalf("AnnounceExpiry after the expiry = %v, %v", ok, err)
	}
	limited, _, err := IssueToken(p, nil, IssueRequest{Owner: "team ci", Name: "partner", AllowedCIDRs: []string{"2001:db8::/32", "203.0.113.0/24"}}, m, clock.Now(), entropy)
	must(err)
	must(limited.SetAllowedCIDRs([]string{"203.0.113.7"}, m, clock.Now()))
	must(limited.SetAllowedCIDRs(nil, m, clock.Now()))
	var events []Envelope
	for _, changes := range [][]Envelope{api.Changes(), session.Changes(), rotated.Changes(), owner.Changes(), batches, noticed.Changes(), limited.Changes()} {
		events = append(events, changes...)
	}
	return events, []Secret{apiSecret, sessionSecret, rotatedSecret}
}

func TestSampleEventsCoverEveryRegisteredType(t *testing.T) {
	t.Parallel()
	events, _ := sampleEvents(t)
	have := map[EventType]bool{}
	for _, e := range events {
		have[e.Type] = true
	}
	for _, typ := range NewDefaultRegistry().Types() {
		if !have[typ] {
			t.Errorf("no sample event of registered type %q", typ)
		}
	}
}

func TestRegistryRoundTripsEveryEvent(t *testing.T) {
	t.Parallel()
	reg := NewDefaultRegistry()
	events, _ := sampleEvents(t)
	for _, e := range events {
		t.Run(string(e.Type)+"/"+e.ID.String(), func(t *testing.T) {
			t.Parallel()
			b, err := reg.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := reg.Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip changed the event:\n got  %+v\n want %+v\n json %s", got, e, b)
			}
		})
	}
}

func TestEventsNeverContainTheSecret(t *testing.T) {
	t.Parallel()
	reg := NewDefaultRegistry()
	events, secrets := sampleEvents(t)
	var encoded []string
	for _, e := range events {
		b, err := reg.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		encoded = append(encoded, string(b))
	}
	all := strings.Join(encoded, "\n")
	for _, s := range secrets {
		raw := s.Reveal()
		random := raw[secretRandomStart:secretChecksumStart]
		hash := sha256.Sum256([]byte(raw))
		if !strings.Contains(all, hex.EncodeToString(hash[:])) {
			t.Fatal("the SHA-256 hex of the secret is not in the events: the test would not see them")
		}
		if secretLeaks(all, raw) {
			t.Fatalf("events contain the secret or part of it")
		}
		sha1Sum, sha512Sum, md5Sum := sha1.Sum([]byte(raw)), sha512.Sum512([]byte(raw)), md5.Sum([]byte(raw))
		forbidden := map[string]string{"random part": random}
		for name, b := range map[string][]byte{"secret": []byte(raw), "random part": []byte(random), "sha256": hash[:], "sha1": sha1Sum[:], "sha512": sha512Sum[:], "md5": md5Sum[:]} {
			forbidden[name+" base64"] = strings.TrimRight(base64.StdEncoding.EncodeToString(b), "=")
			forbidden[name+" base64url"] = base64.RawURLEncoding.EncodeToString(b)
			forbidden[name+" base32"] = strings.TrimRight(base32.StdEncoding.EncodeToString(b), "=")
			if name != "sha256" {
				forbidden[name+" hex"] = hex.EncodeToString(b)
				forbidden[name+" HEX"] = strings.ToUpper(hex.EncodeToString(b))
			}
		}
		for name, f := range forbidden {
			// Any 12-character piece is enough to call it a leak.
			for i := 0; i+12 <= len(f); i += 4 {
				if strings.Contains(all, f[i:i+12]) {
					t.Fatalf("events contain the %s of a secret", name)
				}
			}
		}
	}
}

// validWire returns the stored form of an event of type typ from the
// samples, decoded into a generic map for tests to corrupt.
func validWire(t *testing.T, typ EventType) map[string]any {
	t.Helper()
	events, _ := sampleEvents(t)
	for _, e := range events {
		if e.Type != typ {
			continue
		}
		b, err := NewDefaultRegistry().Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("no sample of %s", typ)
	return nil
}

func TestRegistryUnmarshalRejectsCorruptEvents(t *testing.T) {
	t.Parallel()
	type edit func(m map[string]any)
	set := func(path string, v any) edit {
		return func(m map[string]any) {
			keys := strings.Split(path, ".")
			for _, k := range keys[:len(keys)-1] {
				m = m[k].(map[string]any)
			}
			if v == nil {
				delete(m, keys[len(keys)-1])
				return
			}
			m[keys[len(keys)-1]] = v
		}
	}
	null := json.RawMessage("null")
	tests := []struct {
		name string
		typ  EventType
		edit edit
		raw  string // used instead of an edited sample when set
		want error
	}{
		{name: "empty input", raw: "", want: ErrCorruptEvent},
		{name: "not JSON", raw: "tlk_not json", want: ErrCorruptEvent},
		{name: "JSON array", raw: "[]", want: ErrCorruptEvent},
		{name: "JSON null", raw: "null", want: ErrCorruptEvent},
		{name: "truncated", raw: `{"id":"01JD`, want: ErrCorruptEvent},
		{name: "two events", typ: TypeTokenRevoked, edit: func(map[string]any) {}, raw: "twice", want: ErrCorruptEvent},
		{name: "unknown type", typ: TypeTokenRevoked, edit: set("type", "token.stolen.v1"), want: ErrUnknownEventType},
		{name: "no type", typ: TypeTokenRevoked, edit: set("type", nil), want: ErrCorruptEvent},
		{name: "no id", typ: TypeTokenRevoked, edit: set("id", nil), want: ErrCorruptEvent},
		{name: "malformed id", typ: TypeTokenRevoked, edit: set("id", "not-a-ulid"), want: ErrCorruptEvent},
		{name: "token event on an owner", typ: TypeTokenRevoked, edit: set("aggregate_type", "owner"), want: ErrCorruptEvent},
		{name: "unknown aggregate type", typ: TypeTokenRevoked, edit: set("aggregate_type", "tenant"), want: ErrCorruptEvent},
		{name: "token id not a ULID", typ: TypeTokenRevoked, edit: set("aggregate_id", "alice"), want: ErrCorruptEvent},
		{name: "owner id empty", typ: TypeOwnerTokensRevoked, edit: set("aggregate_id", ""), want: ErrCorruptEvent},
		{name: "owner id with NUL", typ: TypeOwnerTokensRevoked, edit: set("aggregate_id", "a\x00"), want: ErrCorruptEvent},
		{name: "no time", typ: TypeTokenRevoked, edit: set("time", nil), want: ErrCorruptEvent},
		{name: "time not RFC 3339", typ: TypeTokenRevoked, edit: set("time", "yesterday"), want: ErrCorruptEvent},
		{name: "time before year 1 in UTC", typ: TypeTokenRevoked, edit: set("time", "0001-01-01T00:30:00+01:00"), want: ErrCorruptEvent},
		{name: "schema 2", typ: TypeTokenRevoked, edit: set("schema", 2), want: ErrCorruptEvent},
		{name: "schema missing", typ: TypeTokenRevoked, edit: set("schema", nil), want: ErrCorruptEvent},
		{name: "payload missing", typ: TypeTokenRevoked, edit: set("data", nil), want: ErrCorruptEvent},
		{name: "payload null", typ: TypeTokenRevoked, edit: set("data", null), want: ErrCorruptEvent},
		{name: "payload a string", typ: TypeTokenRevoked, edit: set("data", "revoked"), want: ErrCorruptEvent},
		{name: "payload field of the wrong type", typ: TypeTokenRevoked, edit: set("data.reason", 42), want: ErrCorruptEvent},
		{name: "issued: unknown kind", typ: TypeTokenIssued, edit: set("data.kind", "bearer"), want: ErrCorruptEvent},
		{name: "issued: no owner", typ: TypeTokenIssued, edit: set("data.owner", nil), want: ErrCorruptEvent},
		{name: "issued: zero hash", typ: TypeTokenIssued, edit: set("data.secret_sha256", strings.Repeat("0", 64)), want: ErrCorruptEvent},
		{name: "issued: short hash", typ: TypeTokenIssued, edit: set("data.secret_sha256", "abcd"), want: ErrCorruptEvent},
		{name: "issued: no hash", typ: TypeTokenIssued, edit: set("data.secret_sha256", nil), want: ErrCorruptEvent},
		{name: "issued: api token with an idle timeout", typ: TypeTokenIssued, edit: set("data.idle_timeout", 60), want: ErrCorruptEvent},
		{name: "issued: negative idle timeout", typ: TypeTokenIssued, edit: set("data.idle_timeout", -60), want: ErrCorruptEvent},
		{name: "issued: expiry before year 1", typ: TypeTokenIssued, edit: set("data.expires_at", "0000-06-01T00:00:00Z"), want: ErrCorruptEvent},
		{name: "issued: zero rotated_from", typ: TypeTokenIssued, edit: set("data.rotated_from", "00000000000000000000000000"), want: ErrCorruptEvent},
		{name: "issued: scopes not a list", typ: TypeTokenIssued, edit: set("data.scopes", "read"), want: ErrCorruptEvent},
		{name: "used: zero count", typ: TypeTokenUsed, edit: set("data.count", 0), want: ErrCorruptEvent},
		{name: "used: negative count", typ: TypeTokenUsed, edit: set("data.count", -1), want: ErrCorruptEvent},
		{name: "used: no first use", typ: TypeTokenUsed, edit: set("data.first_at", nil), want: ErrCorruptEvent},
		{name: "used: last before first", typ: TypeTokenUsed, edit: set("data.last_at", "2000-01-01T00:00:00Z"), want: ErrCorruptEvent},
		{name: "expiry set: unknown reason", typ: TypeTokenExpirySet, edit: set("data.reason", "because"), want: ErrCorruptEvent},
		{name: "expiry set: no reason", typ: TypeTokenExpirySet, edit: set("data.reason", nil), want: ErrCorruptEvent},
		{name: "expiry set: rotated_to without rotation", typ: TypeTokenExpirySet, edit: set("data.rotated_to", "01JD0000000000000000000000"), want: ErrCorruptEvent},
		{name: "owner revoked: no instant", typ: TypeOwnerTokensRevoked, edit: set("data.revoked_before", nil), want: ErrCorruptEvent},
		{name: "owner revoked: owner invalid", typ: TypeOwnerTokensRevoked, edit: set("data.owner", "\x01"), want: ErrCorruptEvent},
		{name: "owner revoked: until not a time", typ: TypeOwnerTokensRevoked, edit: set("data.until", 5), want: ErrCorruptEvent},
		{name: "family revoked: no family", typ: TypeOwnerFamilyRevoked, edit: set("data.family", nil), want: ErrCorruptEvent},
		{name: "family revoked: zero family", typ: TypeOwnerFamilyRevoked, edit: set("data.family", "00000000000000000000000000"), want: ErrCorruptEvent},
		{name: "family revoked: owner invalid", typ: TypeOwnerFamilyRevoked, edit: set("data.owner", "\x01"), want: ErrCorruptEvent},
		{name: "family revoked: zero reused token", typ: TypeOwnerFamilyRevoked, edit: set("data.reuse.token", "00000000000000000000000000"), want: ErrCorruptEvent},
	}
	reg := NewDefaultRegistry()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			input := []byte(tc.raw)
			if tc.edit != nil {
				m := validWire(t, tc.typ)
				tc.edit(m)
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				input = b
				if tc.raw == "twice" {
					input = append(append(b, '\n'), b...)
				}
			}
			e, err := reg.Unmarshal(input)
			wantErr(t, err, tc.want)
			if !reflect.DeepEqual(e, Envelope{}) {
				t.Fatalf("a refused event decoded to %+v", e)
			}
		})
	}
}

func TestRegistryUnmarshalNormalisesTimes(t *testing.T) {
	t.Parallel()
	m := validWire(t, TypeTokenUsed)
	m["time"] = "2026-11-22T12:00:00.123456789+02:00"
	data := m["data"].(map[string]any)
	data["first_at"] = "2026-11-22T11:59:00.000000999+02:00"
	data["last_at"] = "2026-11-22T05:00:00.5-05:00"
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewDefaultRegistry().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	d := e.Data.(TokenUsed)
	for name, pair := range map[string][2]time.Time{
		"time":     {e.Time, time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)},
		"first_at": {d.FirstAt, time.Date(2026, 11, 22, 9, 59, 0, 0, time.UTC)},
		"last_at":  {d.LastAt, time.Date(2026, 11, 22, 10, 0, 0, 500000000, time.UTC)},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %v, want exactly %v", name, pair[0], pair[1])
		}
	}
}

func TestRegistryMarshalRefusesMismatchedEvents(t *testing.T) {
	t.Parallel()
	reg := NewDefaultRegistry()
	events, _ := sampleEvents(t)
	revoked := events[0]
	for _, e := range events {
		if e.Type == TypeTokenRevoked {
			revoked = e
		}
	}
	wrongType := revoked
	wrongType.Type = TypeTokenUsed
	wrongKind := revoked
	wrongKind.AggregateKind = AggregateOwner
	unknown := revoked
	unknown.Type = "token.stolen.v1"
	noData := revoked
	noData.Data = nil
	for name, e := range map[string]Envelope{"type and payload disagree": wrongType, "wrong aggregate kind": wrongKind, "unregistered type": unknown, "no payload": noData} {
		if _, err := reg.Marshal(e); err == nil {
			t.Errorf("%s: Marshal succeeded", name)
		}
	}
	if _, err := reg.Marshal(unknown); !errors.Is(err, ErrUnknownEventType) {
		t.Errorf("unregistered type: %v", err)
	}
	if _, err := NewRegistry().Unmarshal(mustMarshal(t, reg, revoked)); !errors.Is(err, ErrUnknownEventType) {
		t.Errorf("empty registry: %v", err)
	}
}

func mustMarshal(t testing.TB, reg *Registry, e Envelope) []byte {
	t.Helper()
	b, err := reg.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzUnmarshalEvent(f *testing.F) {
	reg := NewDefaultRegistry()
	events, _ := sampleEvents(f)
	for _, e := range events {
		f.Add(mustMarshal(f, reg, e))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"01JD0000000000000000000000","type":"token.revoked.v1","aggregate_type":"token","aggregate_id":"01jd0000000000000000000000","actor":"\u0000\ud800","time":"0001-01-01T00:00:01+00:01","schema":1,"data":{"reason":"x"}}`))
	f.Add([]byte(`{"id":"01JD0000000000000000000000","type":"owner.tokens_revoked.v1","aggregate_type":"owner","aggregate_id":"a","actor":"x","time":"2026-01-01T00:00:00Z","schema":1,"data":{"owner":"a","revoked_before":"9999-12-31T23:59:59.999999999-23:59"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := reg.Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptEvent) && !errors.Is(err, ErrUnknownEventType) {
				t.Fatalf("error %v wraps neither ErrCorruptEvent nor ErrUnknownEventType", err)
			}
			return
		}
		again, err := reg.Marshal(e)
		if err != nil {
			t.Fatalf("accepted event does not marshal: %v\ninput %q", err, b)
		}
		e2, err := reg.Unmarshal(again)
		if err != nil {
			t.Fatalf("re-marshalled event does not unmarshal: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip changed the event:\n first  %+v\n second %+v", e, e2)
		}
		// Whatever is accepted can be applied without panicking.
		NewState().Apply(e)
	})
}
