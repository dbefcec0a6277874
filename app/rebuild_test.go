package app_test

import (
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/app"
)

func TestRebuildConfigValidate(t *testing.T) {
	t.Parallel()
	valid := app.DefaultRebuildConfig()
	valid.PostgresURL = "postgres://u:secret@127.0.0.1:5432/db"
	for _, tc := range []struct {
		name   string
		change func(*app.RebuildConfig)
		want   []string // substrings of the error; none: valid
	}{
		{"defaults with a database", func(*app.RebuildConfig) {}, nil},
		{"several nats servers", func(c *app.RebuildConfig) { c.NATSURL = "nats://a:4222, nats://b:4222" }, nil},
		{"every problem at once", func(c *app.RebuildConfig) {
			c.NATSURL = "http://x"
			c.PostgresURL = ""
			c.Store.Stream = "a.b"
			c.Rebuild.Name = ""
			c.Rebuild.Batch = 0
			c.Rebuild.SwapAttempts = 0
			c.Rebuild.LockTimeout = -time.Second
		}, []string{"want nats://", "postgres url must be set", "stream", "projection name must be set", "batch 0", "swap attempts 0", "lock timeout -1s"}},
		{"nats url without host", func(c *app.RebuildConfig) { c.NATSURL = "nats://" }, []string{"has no host"}},
		{"malformed postgres url", func(c *app.RebuildConfig) { c.PostgresURL = "postgres://u:secret@host:notaport/db" }, []string{"postgres url"}},
		{"rebuild checkpoint name", func(c *app.RebuildConfig) { c.Rebuild.Name = "lifecycle_rebuild" }, []string{"_rebuild"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := valid
			tc.change(&c)
			checkValidateError(t, c.Validate(), tc.want)
		})
	}
}
