// Package sdk is the Go client of tokenledger's HTTP API and the types the
// API speaks: the server encodes exactly these types, so a program built on
// this package and the server cannot drift apart.
package sdk
