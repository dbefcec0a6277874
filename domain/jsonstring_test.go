package domain_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tokenledger/tokenledger/domain"
)

// AppendJSONString quotes a string exactly as encoding/json does: as
// json.Marshal with escapeHTML, as an Encoder that does not escape HTML
// without.
func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", "o\"w\\n<e>&r\n\t\r\b\f\x01\x1f", "ünïcode \u2028\u2029 é", "\x7f", "bad \xff utf8 \xc3",
		"</script>", "a\x00b", "\xe2\x80", "emoji 🙂 & more",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := domain.AppendJSONString(nil, s, true); !bytes.Equal(got, want) {
			t.Errorf("%q with HTML escapes: got %s, want %s", s, got, want)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got, want := domain.AppendJSONString([]byte("x"), s, false), append([]byte("x"), bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...); !bytes.Equal(got, want) {
			t.Errorf("%q without HTML escapes: got %s, want %s", s, got, want)
		}
	}
}
