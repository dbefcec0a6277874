// Package openapi holds the OpenAPI 3 description of tokenledger's HTTP API,
// the document the server answers at GET /v1/openapi.json. The document is
// the contract: its schemas describe exactly the wire types of package sdk
// (a test keeps them in step), and end-to-end tests check real requests and
// answers against it.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

//go:embed openapi.json
var document []byte

// Document returns the OpenAPI 3.0 document, as JSON, exactly as the server
// serves it at GET /v1/openapi.json. The caller may modify the returned
// slice; every call returns a fresh copy.
func Document() []byte {
	return slices.Clone(document)
}

// Operation is one operation of the document: an HTTP method on a path.
type Operation struct {
	// Method is the HTTP method, in upper case ("GET", "POST", ...).
	Method string
	// Path is the path template as the document writes it, with
	// parameters in braces: "/v1/tokens/{id}".
	Path string
	// ID is the operation's operationId, for example "getToken".
	ID string
}

// operationMethods are the fields of an OpenAPI 3.0 path item that hold
// operations; the others (parameters, summary, ...) do not.
var operationMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Operations returns every operation of the document, sorted by path and
// then method. The document is embedded and checked by the package's tests,
// so Operations panics only if the embedded document is not valid JSON of
// the expected shape, which no released build can have.
func Operations() []Operation {
	ops, err := parseOperations(document)
	if err != nil {
		panic(fmt.Sprintf("openapi: embedded document: %v", err))
	}
	return ops
}

func parseOperations(doc []byte) ([]Operation, error) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse paths: %w", err)
	}
	var ops []Operation
	for path, item := range d.Paths {
		for _, method := range operationMethods {
			raw, ok := item[method]
			if !ok {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("parse %s %s: %w", method, path, err)
			}
			ops = append(ops, Operation{Method: strings.ToUpper(method), Path: path, ID: op.OperationID})
		}
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return ops, nil
}
