// Package export writes verifiable exports of the ledger: the events of a
// time range, filtered by owner and type, as JSON lines or CSV, with a
// signed manifest that lets anyone holding the public key prove the file
// is complete and unaltered; and it verifies them, on their own or against
// the live stream.
//
// # Selection
//
// An export holds the events whose Envelope.Time is in [from, to), of the
// selected types (all when none are given), of the given owner (all when
// none): an owner's own events and the events of its tokens. Usage events
// (usage.batch.v1, what validators record, and token.used.v1, what they
// recorded before batches) live in the usage stream and are included only
// on request. Event times do not follow stream order strictly (they come from
// the clocks of the nodes that recorded them), so an export reads each
// stream from its start through the last sequence it had when the export
// began, and records that sequence in the manifest.
//
// A usage batch becomes one record per token it holds, in the batch's
// order: each record has the batch's sequence, event id, time, type and
// actor, and one token's id, owner, count, first and last use and client
// address. So an owner's export holds only its own tokens' uses, and a
// reader of records needs no second layout. Records of one batch share
// their sequence; every other record has a sequence of its own.
//
// Records are in stream order. With usage, the lifecycle and usage streams
// are merged: of the two streams' next events, the earlier by event time
// comes first (lifecycle first on a tie). Each stream keeps its own order,
// so each stream's sequences increase through the file (strictly, but for
// the records of one batch).
//
// # Records
//
// Every record has the Columns, in that order: the stream sequence, the
// stream (lifecycle or usage), event id, time, type, token id (empty for
// owner events), owner, actor, correlation id, reason (revocation reason,
// or the expiry reason of token.expiry_set.v1), the payload's fields, and
// prev_hash. Times are RFC 3339 in UTC with exactly six fraction digits.
// Scopes are space-separated. A time or number that does not apply, or is
// unset, is null in JSONL and an empty field in CSV; text that does not
// apply is "". An empty expires_at of token.issued.v1 or
// token.expiry_set.v1 means "does not expire". The secret's hash of
// token.issued.v1 (secret_sha256) is never exported.
//
// JSONL: one JSON object per line, ending in "\n", members in the order of
// Columns, nothing else on the line. CSV: RFC 4180 as encoding/csv writes
// it: a header row of the Columns, one record per event, fields quoted when
// they hold a comma, a quote, a line break or start with a space, records
// ending in "\n". encoding/csv reads a "\r\n" inside a quoted field back as
// "\n"; tokenledger's commands refuse control characters in every text
// field, so recorded events hold none.
//
// CSV formula guard: a spreadsheet takes a field starting with = + - @, a
// tab or a carriage return for a formula, and owners, names, actors and
// reasons are chosen by callers. Every CSV field starting with one of
// those characters, or with an apostrophe, is written with one more
// apostrophe in front; UnguardCSV (remove one leading apostrophe from a
// field that has one) restores every field exactly. JSONL is not guarded.
//
// # Owners
//
// token.issued.v1 and owner events carry their owner; the other token
// events do not. An export finds them with a least-recently-used cache of
// token→owner, of Options.OwnerCache entries (DefaultOwnerCache, about 9
// MB), filled from every token.issued event as the stream goes by, whether
// or not the event is exported. Since the stream is read from its start, a
// token's token.issued event has always gone by before its other events; a
// miss happens only for a token evicted since, and costs one direct get
// of its token.issued subject, which holds that one event. The cache keeps
// memory bounded whatever the number of tokens, where a map of every
// token would grow with the ledger; events of one token are usually close
// together in the stream, which is what an LRU rewards (see
// BenchmarkExport's owner-loads/op).
//
// # Integrity
//
// The hash chain: H0 = SHA-256("tokenledger-export-v1" || the filter's
// canonical JSON, as in the manifest), H(i) = SHA-256(H(i-1) || record i's
// bytes exactly as written without the newline: the JSONL line, or the CSV
// record with its quotes, not counting the header). Each record's
// prev_hash is H(i-1), in lowercase hex: a verifier checks every link and
// can say which record breaks the chain, not only that the head differs.
//
// The manifest, FILE.manifest.json next to the data file FILE, holds the
// format version, the filter (from, to, owner, types, include_usage,
// format), the first and last event times, each stream's name, the
// sequence it was read through and the first and last sequence exported,
// the number of records per type and in all, the data file's SHA-256, H0
// and the chain's head, the key id, and an Ed25519 signature over the
// manifest without its signature member (Manifest.SignedBytes). The key id
// is the first 16 hex digits of the SHA-256 of the raw 32-byte public key.
// Keys are PEM files: PKCS #8 "PRIVATE KEY" (mode 0600) and PKIX "PUBLIC
// KEY". An export without a key must say so (Options.Unsigned); its
// manifest is marked unsigned and verification fails unless unsigned
// exports are explicitly accepted.
//
// Verify checks all of it and reports every problem with where it is:
// an altered record breaks the link to the next one, a removed or moved
// record the link to itself, the counts, sequences and head catch
// truncation, and the signature catches an altered manifest. A file that
// was altered and then re-chained, re-counted and re-signed with the key is
// consistent by construction; only a comparison with the live stream
// (VerifyOptions.Against) finds the events it lacks or the records it
// altered.
package export
