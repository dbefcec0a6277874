// Package app assembles tokenledger's components into running processes:
// the embedded development stack today, and the API server and projection
// workers as they arrive. Each Start function returns the assembled app and
// a stop function that undoes everything it started, in reverse order.
package app
