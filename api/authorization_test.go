package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestManyAuthorizationHeaders sends every route the server lists
// (Server.Routes, and HEAD where GET is answered) with two Authorization
// headers, in both orders: a valid admin bearer and another credential. A
// server that read only one of them would authorize a credential other than
// the one a proxy in front of it checked or logged, so each must be 400
// invalid_request with the RFC 6750 challenge, and record nothing.
func TestManyAuthorizationHeaders(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	target, targetID := issueDirect(t, s, "alice", []string{"read"}, 0)
	fill := strings.NewReplacer("{id}", targetID.String(), "{owner}", "alice", "{path...}", "orders/42")

	routes := s.API.Server.Routes()
	if len(routes) < 20 {
		t.Fatalf("the server lists %d routes; Routes no longer lists them all?", len(routes))
	}
	for _, rt := range routes {
		methods := []string{rt.Method}
		if rt.Method == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
		for _, method := range methods {
			for _, order := range [][]string{
				{"Bearer " + s.Admin, "Bearer garbage"},
				{"Basic YWRtaW46YWRtaW4=", "Bearer " + s.Admin},
				{"Bearer " + s.Admin, "Bearer " + s.Admin},
			} {
				name := method + " " + rt.Path + "/" + strings.Fields(order[0])[0] + "," + strings.Fields(order[1])[0]
				t.Run(name, func(t *testing.T) {
					before := s.LastSequence(t)
					res := do(t, s, req{method: method, path: fill.Replace(rt.Path), header: http.Header{"Authorization": order}})
					if res.status != http.StatusBadRequest {
						t.Fatalf("%d %s, want 400", res.status, redact(res.body))
					}
					if method != http.MethodHead {
						if code := res.errorCode(t); code != sdk.CodeInvalidRequest {
							t.Errorf("code %q, want %q", code, sdk.CodeInvalidRequest)
						}
					}
					if got := res.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_request"`) {
						t.Errorf("WWW-Authenticate %q, want the invalid_request challenge", got)
					}
					if after := s.LastSequence(t); after != before {
						t.Errorf("the stream moved from %d to %d", before, after)
					}
				})
			}
		}
	}
	if got := authStatus(t, s, target); got != http.StatusOK {
		t.Errorf("the target no longer authenticates after the refused calls (%d)", got)
	}
}
