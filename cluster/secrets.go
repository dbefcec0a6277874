package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"

	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/stack"
)

// secrets are the TLS certificates and the NATS credentials of the
// cluster, kept under Dir/secrets (made on first start, reused after).
type secrets struct {
	dir string
	// nodeCert and nodeKey per server name.
	nodeCert, nodeKey map[string]string
	ca                string
	// operatorPassword is the operator user's password (it goes into the
	// servers' configuration; the operator's processes read the file).
	operatorPassword string
	// apiNKey and workerNKey are the roles' public keys.
	apiNKey, workerNKey string
	// auth is how each role connects.
	operator, api, worker natsconn.Auth
}

// operatorUser is the NATS user of set-up (streams init, admin bootstrap).
const operatorUser = "operator"

func makeSecrets(dir string, servers []string) (*secrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &secrets{dir: dir, nodeCert: map[string]string{}, nodeKey: map[string]string{}, ca: filepath.Join(dir, "ca.pem")}
	ca, err := stack.LoadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		if ca, err = stack.NewCA("tokenledger cluster CA"); err == nil {
			err = ca.WriteFiles(dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	issue := func(name string) (string, string, error) {
		cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if exists(cert) && exists(key) {
			return cert, key, nil
		}
		return ca.IssueFiles(dir, name, "127.0.0.1", "localhost")
	}
	for _, name := range servers {
		if s.nodeCert[name], s.nodeKey[name], err = issue(name); err != nil {
			return nil, err
		}
	}
	roles := []struct {
		name string
		auth *natsconn.Auth
	}{{"operator", &s.operator}, {"api", &s.api}, {"worker", &s.worker}}
	for _, r := range roles {
		cert, key, err := issue("client-" + r.name)
		if err != nil {
			return nil, err
		}
		*r.auth = natsconn.Auth{CAFile: s.ca, CertFile: cert, KeyFile: key}
	}
	passwordFile := filepath.Join(dir, "operator-password")
	if s.operatorPassword, err = keptPassword(passwordFile); err != nil {
		return nil, err
	}
	s.operator.User, s.operator.PasswordFile = operatorUser, passwordFile
	if s.api.NKeyFile, s.apiNKey, err = keptNKey(filepath.Join(dir, "api.nk")); err != nil {
		return nil, err
	}
	if s.worker.NKeyFile, s.workerNKey, err = keptNKey(filepath.Join(dir, "worker.nk")); err != nil {
		return nil, err
	}
	return s, nil
}

// keptPassword returns the password in path, making one on first use.
func keptPassword(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		return string(raw), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(buf)
	return password, os.WriteFile(path, []byte(password), 0o600)
}

// keptNKey returns the seed file at path and its public user key, making
// the seed on first use.
func keptNKey(path string) (string, string, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", "", err
		}
		if seed, err = kp.Seed(); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(path, seed, 0o600); err != nil {
			return "", "", err
		}
	} else if err != nil {
		return "", "", err
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return "", "", fmt.Errorf("%s: no NKey seed", path)
	}
	pub, err := kp.PublicKey()
	return path, pub, err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
