package app

import "github.com/tokenledger/tokenledger/api/openapi"

// openAPIDocument is the OpenAPI document the API serves.
func openAPIDocument() []byte { return openapi.Document() }
