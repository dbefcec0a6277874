package export

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// FormatVersion is the version of the export format this package writes
// and verifies: the record layout (Columns), the chain and the manifest.
const FormatVersion = 1

// manifestKind marks a manifest of a tokenledger export.
const manifestKind = "tokenledger-export"

// ManifestSuffix is appended to a data file's path to name its manifest.
const ManifestSuffix = ".manifest.json"

// ManifestPath returns the path of the manifest of data file path.
func ManifestPath(path string) string { return path + ManifestSuffix }

// Manifest describes an export's data file and makes it verifiable: what
// was selected, what was written (counts, sequences, times), the data
// file's SHA-256, the hash chain's start and head, and an Ed25519
// signature over all of it. Its JSON members are in the order of the
// fields; SignedBytes is the exact signed form.
type Manifest struct {
	// Kind is always "tokenledger-export".
	Kind string `json:"kind"`
	// Version is FormatVersion.
	Version int `json:"format_version"`
	// CreatedAt is when the export finished, in the layout of every
	// export time.
	CreatedAt string `json:"created_at"`
	// Filter is what the export selected; it includes the time range
	// [from, to).
	Filter Filter `json:"filter"`
	// DataFile is the data file's base name.
	DataFile string `json:"data_file"`
	// DataSHA256 is the SHA-256 of the whole data file, lowercase hex.
	DataSHA256 string `json:"data_sha256"`
	// Records is the number of records.
	Records uint64 `json:"records"`
	// Counts is the number of records per event type, for the types that
	// have records.
	Counts map[domain.EventType]uint64 `json:"counts"`
	// FirstTime and LastTime are the earliest and latest event times of
	// the records; empty when there are none.
	FirstTime string `json:"first_time"`
	LastTime  string `json:"last_time"`
	// Lifecycle and Usage (with include_usage only) describe what was
	// read of each stream.
	Lifecycle StreamRange  `json:"lifecycle"`
	Usage     *StreamRange `json:"usage,omitempty"`
	// Chain is the hash chain over the records.
	Chain Chain `json:"chain"`
	// KeyID identifies the signing key (KeyID of its public key); empty
	// when Unsigned.
	KeyID string `json:"key_id"`
	// Unsigned is set on an export written without a key.
	Unsigned bool `json:"unsigned"`
	// Signature is the base64 (standard, padded) Ed25519 signature of
	// SignedBytes; empty when Unsigned.
	Signature string `json:"signature,omitempty"`
}

// StreamRange is what an export read of one stream.
type StreamRange struct {
	// Stream is the stream's name.
	Stream string `json:"stream"`
	// ScannedThrough is the stream's last sequence when the export began
	// reading it: the export covers the stream up to it, and Against
	// compares with the stream up to it.
	ScannedThrough uint64 `json:"scanned_through"`
	SequenceSpan
}

// Chain describes the hash chain: H0 = SHA-256("tokenledger-export-v1" ||
// the filter's canonical JSON), H(i) = SHA-256(H(i-1) || record i's bytes
// as written, without the newline), Head = H(records).
type Chain struct {
	// Algorithm is always "sha256".
	Algorithm string `json:"algorithm"`
	H0        string `json:"h0"`
	Head      string `json:"head"`
}

// NewManifest returns the manifest of a data file named dataFile (its base
// name), written by a Writer for filter f that returned sum, from events
// read of the lifecycle stream as lifecycle says and of the usage stream as
// usage says (nil without usage; their sequence spans are taken from sum).
// The manifest is unsigned until Sign.
func NewManifest(f Filter, dataFile string, sum Summary, lifecycle StreamRange, usage *StreamRange, createdAt time.Time) Manifest {
	f = f.Normalize()
	h0 := f.H0()
	m := Manifest{
		Kind: manifestKind, Version: FormatVersion, CreatedAt: formatTime(domain.NormalizeTime(createdAt)),
		Filter: f, DataFile: dataFile, DataSHA256: hex.EncodeToString(sum.DataSHA256[:]),
		Records: sum.Records, Counts: maps.Clone(sum.Counts), Lifecycle: lifecycle,
		Chain:    Chain{Algorithm: "sha256", H0: hex.EncodeToString(h0[:]), Head: hex.EncodeToString(sum.Head[:])},
		Unsigned: true,
	}
	if m.Counts == nil {
		m.Counts = map[domain.EventType]uint64{}
	}
	if sum.Records > 0 {
		m.FirstTime, m.LastTime = formatTime(sum.FirstTime), formatTime(sum.LastTime)
	}
	m.Lifecycle.SequenceSpan = sum.Lifecycle
	if usage != nil {
		u := *usage
		u.SequenceSpan = sum.Usage
		m.Usage = &u
	}
	return m
}

// SignedBytes returns what the signature signs: the manifest's JSON
// without the signature member, compact, members in the order of
// Manifest's fields, map keys sorted, as encoding/json writes it.
func (m Manifest) SignedBytes() ([]byte, error) {
	m.Signature = ""
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b, nil
}

// WriteManifest writes m, indented, to path, replacing the file only once
// it is complete.
func WriteManifest(path string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

// ReadManifest reads and decodes the manifest at path. It refuses unknown
// members and data after the object, so that nothing in the file escapes
// the signature.
func ReadManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	return ParseManifest(b)
}

// ParseManifest decodes a manifest as ReadManifest does.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, errors.New("manifest: data after the JSON object")
	}
	if m.Kind != manifestKind {
		return Manifest{}, fmt.Errorf("manifest: kind %q is not %q", m.Kind, manifestKind)
	}
	if m.Version != FormatVersion {
		return Manifest{}, fmt.Errorf("manifest: format version %d is not supported (want %d)", m.Version, FormatVersion)
	}
	if err := m.Filter.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

// writeFileAtomic writes b to a temporary file next to path and renames
// it over path once written and synced.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
