package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

// Every command that connects to NATS takes the credentials and TLS
// settings: with the right files streams init connects over mutual TLS;
// with a CA that did not sign the server's certificate it fails with one
// line naming the certificate problem; a bad combination of settings is
// refused before connecting, every problem named with its flag and no
// secret shown.
func TestNATSCredentialsAndTLSFlags(t *testing.T) {
	nkeyFile, nkeyPub := stacktest.NKeyUser(t)
	srv, files := stacktest.NATSWithTLS(t, stack.NATSConfig{Users: []stack.NATSUser{{NKey: nkeyPub}}})
	env := []string{
		"TOKENLEDGER_NATS_URL=" + srv.ClientURL(),
		"TOKENLEDGER_NATS_NKEY=" + nkeyFile,
		"TOKENLEDGER_NATS_CA=" + files.CA,
		"TOKENLEDGER_NATS_CERT=" + files.Cert,
		"TOKENLEDGER_NATS_KEY=" + files.Key,
		"TOKENLEDGER_NATS_SERVER_NAME=localhost",
	}
	if r := runBinary(t, env, "streams", "init"); r.code != 0 || !strings.Contains(r.stdout, "ready") {
		t.Fatalf("streams init over mutual TLS with an nkey: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}

	other, err := stack.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := other.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, env, "streams", "init", "--nats-ca", filepath.Join(dir, "ca.pem"))
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code == 0 || len(lines) != 1 || !strings.Contains(lines[0], "x509: certificate signed by unknown authority") {
		t.Errorf("streams init with another CA: exit %d, stderr %q; want one line naming the certificate problem", r.code, r.stderr)
	}

	secret := "not-for-logs"
	passwordFile := filepath.Join(dir, "password")
	if err := os.WriteFile(passwordFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"streams", "init"},
		{"admin", "bootstrap"},
		{"export", "--from", "2026-01-01", "--to", "2026-01-02", "--out", filepath.Join(dir, "x.jsonl"), "--unsigned"},
		{"rebuild", "--postgres-url", "postgres://127.0.0.1:1/x"},
		{"project", "--postgres-url", "postgres://127.0.0.1:1/x"},
		{"serve", "--postgres-url", "postgres://127.0.0.1:1/x"},
	} {
		r := runBinary(t, env, append(args, "--nats-password-file", passwordFile, "--nats-key", "")...)
		for _, want := range []string{"--nats-password-file is set without --nats-user", "--nats-cert is set without --nats-key", "given at once"} {
			if r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("%s with a password file but no user and a certificate without key: exit %d, stderr %q; want %q", strings.Join(args, " "), r.code, r.stderr, want)
			}
		}
		if strings.Contains(r.stderr+r.stdout, secret) {
			t.Errorf("%s shows the password: %s %s", strings.Join(args, " "), r.stdout, r.stderr)
		}
	}
}
