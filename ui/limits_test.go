package ui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestTokenPageShowsNetworksAddressesAndDailyUse: the token page names the
// token's allowed networks, the client addresses it was used from and its
// uses per day, once the usage projection has them.
func TestTokenPageShowsNetworksAddressesAndDailyUse(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	limited := issueAPI(t, s, sdk.IssueRequest{Owner: "alice", Name: "partner", AllowedCIDRs: []string{"127.0.0.0/8", "2001:db8::/32"}})
	hs := signInHTTP(t, s, s.Admin)

	for range 3 {
		if status, body := apiCall(t, s, http.MethodGet, "/v1/auth", limited.Secret, nil); status != http.StatusOK {
			t.Fatalf("forward-auth from 127.0.0.1: %d %s", status, body)
		}
	}
	var p page
	stacktest.Eventually(t, 20*time.Second, func() bool {
		p = hs.get(t, "/ui/tokens/"+limited.ID)
		return strings.Contains(p.body, "<code>127.0.0.1</code>")
	}, "the token page never named the address the token was used from")
	if p.status != http.StatusOK {
		t.Fatalf("token page: %d", p.status)
	}
	for _, want := range []string{
		`<dd id="allowed-cidrs"><code>127.0.0.0/8</code> <code>2001:db8::/32</code>`,
		`id="usage-days"`,
		`: 3 uses"`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the token page lacks %s", want)
		}
	}
	if n := strings.Count(p.body, `<li title="`); n != 30 {
		t.Errorf("the token page shows %d days of use, want 30", n)
	}
}
