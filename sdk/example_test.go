package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tokenledger/tokenledger/sdk"
)

// ExampleClient_Issue issues a token and keeps its secret, which is shown
// this once. The server here is a stand-in answering POST /v1/tokens as
// tokenledger does; a program would give New the server's URL.
func ExampleClient_Issue() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req sdk.IssueRequest
		if r.Method != http.MethodPost || r.URL.Path != "/v1/tokens" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":{"code":"bad_request","message":"unexpected request"}}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(sdk.IssuedToken{
			TokenMetadata: sdk.Token{ID: "01JD5B6W2V3Q8X9Y0Z1A2B3C4D", Owner: "alice", Name: req.Name, Scopes: req.Scopes,
				Kind: "api", Status: "active", CreatedAt: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)},
			Secret: "tl_example-secret",
		})
	}))
	defer srv.Close()

	client, err := sdk.New(srv.URL, sdk.WithToken("tl_the-callers-own-secret"))
	if err != nil {
		log.Fatal(err)
	}
	issued, err := client.Issue(context.Background(), sdk.IssueRequest{Name: "ci", Scopes: []string{"repo:read"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token", issued.ID, "of", issued.Owner, "scopes", issued.Scopes)
	fmt.Println("secret", issued.Secret)
	// Output:
	// token 01JD5B6W2V3Q8X9Y0Z1A2B3C4D of alice scopes [repo:read]
	// secret tl_example-secret
}
