package export_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/export"
)

// A key pair written to disk loads back: the private key only its owner
// can read, as PKCS #8 and PKIX PEM, never overwriting an existing key.
func TestKeyPairFiles(t *testing.T) {
	t.Parallel()
	pub, priv := signingKey(t)
	prefix := filepath.Join(t.TempDir(), "audit")
	if err := export.WriteKeyPair(prefix, priv); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]struct {
		mode  os.FileMode
		block string
	}{
		prefix + ".key": {0o600, "-----BEGIN PRIVATE KEY-----"},
		prefix + ".pub": {0o644, "-----BEGIN PUBLIC KEY-----"},
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want.mode {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), want.mode)
		}
		b, _ := os.ReadFile(path)
		if !bytes.HasPrefix(b, []byte(want.block)) {
			t.Errorf("%s does not start with %s", path, want.block)
		}
	}
	gotPriv, err := export.LoadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := export.LoadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !gotPriv.Equal(priv) || !gotPub.Equal(pub) {
		t.Fatal("the loaded keys are not the written ones")
	}
	if _, err := export.LoadPublicKey(prefix + ".key"); err == nil || !strings.Contains(err.Error(), `want "PUBLIC KEY"`) {
		t.Errorf("loading the private key as the public one: %v", err)
	}
	if err := export.WriteKeyPair(prefix, priv); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("writing over an existing key pair: %v", err)
	}
	sum := sha256.Sum256(pub)
	if id := export.KeyID(pub); id != hex.EncodeToString(sum[:8]) || len(id) != 16 {
		t.Errorf("KeyID = %q, want the first 16 hex digits of SHA-256 of the raw key", id)
	}
}

// The signature covers every member of the manifest but itself.
func TestSignatureCoversTheManifest(t *testing.T) {
	t.Parallel()
	pub, priv := signingKey(t)
	m := export.NewManifest(historyFilter(10, export.JSONL), "ledger.jsonl", export.Summary{}, export.StreamRange{Stream: "S"}, nil, time.Now())
	if err := m.CheckSignature(pub); !errors.Is(err, export.ErrUnsigned) {
		t.Fatalf("CheckSignature of a new manifest = %v, want ErrUnsigned", err)
	}
	if err := m.Sign(priv); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckSignature(pub); err != nil {
		t.Fatalf("CheckSignature = %v", err)
	}
	for name, edit := range map[string]func(m *export.Manifest){
		"created_at":      func(m *export.Manifest) { m.CreatedAt = "2000-01-01T00:00:00.000000Z" },
		"data_file":       func(m *export.Manifest) { m.DataFile = "other.jsonl" },
		"records":         func(m *export.Manifest) { m.Records++ },
		"filter owner":    func(m *export.Manifest) { m.Filter.Owner = "mallory" },
		"scanned_through": func(m *export.Manifest) { m.Lifecycle.ScannedThrough++ },
		"chain head":      func(m *export.Manifest) { m.Chain.Head = strings.Repeat("f", 64) },
		"unsigned":        func(m *export.Manifest) { m.Unsigned = true },
	} {
		c := m
		edit(&c)
		if err := c.CheckSignature(pub); err == nil {
			t.Errorf("altering %s keeps the signature valid", name)
		}
	}
}
