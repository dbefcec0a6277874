package ledger

import (
	"context"
	"fmt"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// AdminOwner is the owner of the bootstrap token; its scope is ScopeAdmin.
const AdminOwner domain.OwnerID = "admin"

// BootstrapActor is the actor of the bootstrap token's issue.
const BootstrapActor = "system:bootstrap"

// Bootstrapped is the first admin token of a ledger and its secret, which
// exists only here.
type Bootstrapped struct {
	Token  *domain.Token
	Secret domain.Secret
}

// BootstrapAdmin issues the first admin token of a ledger: owner
// AdminOwner, scope ScopeAdmin, the policy's default lifetime. The append
// expects the admin owner to have no owner-wide events yet, so two
// instances bootstrapping one ledger at once cannot both succeed. It needs
// no read model: it runs before any projection exists.
func BootstrapAdmin(ctx context.Context, store Appender, p domain.Policy, clock domain.Clock) (*Bootstrapped, error) {
	tok, secret, err := domain.IssueToken(p, nil, domain.IssueRequest{
		Owner:  AdminOwner,
		Name:   "bootstrap admin",
		Scopes: []string{ScopeAdmin},
	}, domain.Meta{Actor: BootstrapActor}, clock.Now(), nil)
	if err != nil {
		return nil, fmt.Errorf("bootstrap admin token: %w", err)
	}
	if _, err := store.Append(ctx, eventstore.ExpectOwner(AdminOwner, 0), tok.Changes()...); err != nil {
		return nil, fmt.Errorf("bootstrap admin token: %w", err)
	}
	return &Bootstrapped{Token: tok, Secret: secret}, nil
}
