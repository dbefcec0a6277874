package export

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// Sentinel errors of CheckSignature.
var (
	// ErrUnsigned: the manifest was written without a key.
	ErrUnsigned = errors.New("export is unsigned")
	// ErrWrongKey: the manifest names another key than the one given.
	ErrWrongKey = errors.New("manifest signed by another key")
	// ErrBadSignature: the signature does not verify with the key: the
	// manifest was altered after signing, or the signature is not one.
	ErrBadSignature = errors.New("manifest signature invalid")
)

// Key file suffixes of WriteKeyPair.
const (
	PrivateKeySuffix = ".key"
	PublicKeySuffix  = ".pub"
)

// KeyID identifies an Ed25519 public key: the first 16 hexadecimal digits
// of the SHA-256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKeyPair makes an Ed25519 key pair from entropy (nil means
// crypto/rand).
func GenerateKeyPair(entropy io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if entropy == nil {
		entropy = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(entropy)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// WriteKeyPair writes priv to prefix+".key" (PEM "PRIVATE KEY", PKCS #8,
// mode 0600) and its public key to prefix+".pub" (PEM "PUBLIC KEY",
// PKIX, mode 0644). It refuses to overwrite either file.
func WriteKeyPair(prefix string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	keyPath, pubPath := prefix+PrivateKeySuffix, prefix+PublicKeySuffix
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("write key pair: %s already exists", p)
		}
	}
	if err := writeNewFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := writeNewFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		_ = os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNewFile creates path with mode perm (it must not exist) and writes
// b to it.
func writeNewFile(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write key pair: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write key pair: %w", err)
	}
	return nil
}

// LoadPrivateKey reads an Ed25519 private key written by WriteKeyPair
// (PEM "PRIVATE KEY", PKCS #8).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s: a %T, not an Ed25519 key", path, k)
	}
	return priv, nil
}

// LoadPublicKey reads an Ed25519 public key written by WriteKeyPair (PEM
// "PUBLIC KEY", PKIX).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s: a %T, not an Ed25519 key", path, k)
	}
	return pub, nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("key %s: no PEM block", path)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("key %s: a PEM %q block, want %q", path, block.Type, typ)
	}
	return block.Bytes, nil
}

// Sign signs m with priv: it sets KeyID, clears Unsigned and sets
// Signature over SignedBytes.
func (m *Manifest) Sign(priv ed25519.PrivateKey) error {
	pub, ok := priv.Public().(ed25519.PublicKey)
	if !ok || len(priv) != ed25519.PrivateKeySize {
		return errors.New("sign manifest: not an Ed25519 private key")
	}
	m.KeyID, m.Unsigned = KeyID(pub), false
	b, err := m.SignedBytes()
	if err != nil {
		return err
	}
	m.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, b))
	return nil
}

// CheckSignature verifies m's signature with pub: ErrUnsigned for an
// unsigned manifest, ErrWrongKey when m names another key, ErrBadSignature
// when the signature does not verify.
func (m Manifest) CheckSignature(pub ed25519.PublicKey) error {
	if m.Unsigned {
		return ErrUnsigned
	}
	if id := KeyID(pub); id != m.KeyID {
		return fmt.Errorf("%w: the manifest names key %s, the public key given is %s", ErrWrongKey, m.KeyID, id)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: not a base64 Ed25519 signature", ErrBadSignature)
	}
	b, err := m.SignedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, b, sig) {
		return ErrBadSignature
	}
	return nil
}
