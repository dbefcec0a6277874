package eventstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/eventstore"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(*eventstore.Config)
		want   []string // substrings of the error; none means valid
	}{
		{"defaults are valid", func(*eventstore.Config) {}, nil},
		{"three replicas", func(c *eventstore.Config) { c.Replicas = 3 }, nil},
		{"dotted prefix", func(c *eventstore.Config) { c.SubjectPrefix = "acme.tl" }, nil},
		{"empty stream names", func(c *eventstore.Config) { c.Stream, c.UsageStream = "", "" }, []string{"stream: name is empty", "usage stream: name is empty"}},
		{"stream name with a dot", func(c *eventstore.Config) { c.Stream = "A.B" }, []string{"contains one of"}},
		{"same stream twice", func(c *eventstore.Config) { c.UsageStream = c.Stream }, []string{"must differ"}},
		{"wildcard prefix", func(c *eventstore.Config) { c.SubjectPrefix = "tl.*" }, []string{"subject prefix"}},
		{"empty prefix token", func(c *eventstore.Config) { c.SubjectPrefix = "tl..x" }, []string{"empty token"}},
		{"no replicas", func(c *eventstore.Config) { c.Replicas = 0 }, []string{"replicas 0"}},
		{"no duplicate window", func(c *eventstore.Config) { c.DuplicateWindow = 0 }, []string{"duplicate window"}},
		{"usage kept shorter than the duplicate window", func(c *eventstore.Config) { c.UsageMaxAge = time.Minute }, []string{"shorter than the duplicate window"}},
		{"every problem at once", func(c *eventstore.Config) {
			c.RequestTimeout, c.AppendTimeout, c.ReadBatch, c.LoadBatch = 0, 0, 0, 0
		}, []string{"request timeout", "append timeout", "read batch", "load batch"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := eventstore.DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	c := eventstore.DefaultConfig()
	if c.Stream != "TOKENLEDGER" || c.UsageStream != "TOKENLEDGER_USAGE" || c.SubjectPrefix != "tl" ||
		c.DuplicateWindow != 10*time.Minute || c.UsageMaxAge != 30*24*time.Hour || c.Replicas != 1 {
		t.Fatalf("DefaultConfig() = %+v", c)
	}
}
