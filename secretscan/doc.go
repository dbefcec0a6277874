// Package secretscan verifies reports of GitHub's secret scanning partner
// program: a POST whose raw body is signed with ECDSA P-256 (SHA-256), the
// signature in the Github-Public-Key-Signature header (base64 of the
// ASN.1 DER signature), the key named by Github-Public-Key-Identifier
// among the public keys GitHub publishes as JSON
// ({"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}).
//
// A Verifier fetches the keys from its URL on first use and keeps them; a
// report signed with a key id it does not know makes it fetch them again,
// once per unknown id and at most ten times a minute, so that made-up ids
// cannot make it fetch for every request.
package secretscan
