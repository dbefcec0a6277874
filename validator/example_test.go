package validator_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/validator"
)

// ExampleConnect embeds a validator in a program as the deployment's
// validator user (see Embed for the permissions it needs). It needs a
// running deployment, so it is compiled but not run;
// TestConnectRunsWithTheDeployedValidatorPermissions runs the same calls
// against a real NATS server and PostgreSQL.
func ExampleConnect() {
	ctx := context.Background()
	v, err := validator.Connect(ctx, validator.Embed{
		NATSURL:     "tls://nats.internal:4222",
		NATSAuth:    natsconn.Auth{User: "validator", PasswordFile: "/etc/tokenledger/nats-password", CAFile: "/etc/tokenledger/ca.pem"},
		PostgresURL: "postgres://tokenledger_read@db.internal/tokenledger",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close(context.Background())

	p, err := v.Validate(ctx, "tl_...") // the secret a client presented
	switch {
	case err == nil:
		fmt.Println("token of", p.Owner, "with scopes", p.Scopes)
	case errors.Is(err, validator.ErrRevoked), errors.Is(err, validator.ErrExpired):
		fmt.Println("refused:", err)
	default:
		fmt.Println("refused:", err)
	}
}
