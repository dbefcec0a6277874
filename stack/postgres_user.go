package stack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// osUser is the unprivileged account the server runs as when the caller is
// root.
type osUser struct {
	name     string
	uid, gid uint32
}

// serverUser returns the account to run initdb and postgres as: nil (the
// caller itself) unless the caller is root, then "postgres" if that user
// exists, otherwise "nobody".
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if !rootSupported {
		return nil, errors.New("PostgreSQL refuses to run as root, and running it as another user is supported on Linux only: run as an unprivileged user")
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			var unknown user.UnknownUserError
			if errors.As(err, &unknown) {
				continue
			}
			return nil, fmt.Errorf("look up user %s: %w", name, err)
		}
		uid, errU := strconv.ParseUint(u.Uid, 10, 32)
		gid, errG := strconv.ParseUint(u.Gid, 10, 32)
		if errU != nil || errG != nil {
			return nil, fmt.Errorf("user %s has a non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
		}
		return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("PostgreSQL refuses to run as root and neither user postgres nor nobody exists: create a postgres user")
}

// chownTree gives dir and everything below it to u, unless u is nil or dir
// already belongs to u (a cluster is owned by one user throughout, so the
// top directory stands for the tree).
func chownTree(dir string, u *osUser) error {
	if u == nil {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	if uid, ok := ownerUID(fi); ok && uid == u.uid {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, int(u.uid), int(u.gid)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", path, u.name, err)
		}
		return nil
	})
}
