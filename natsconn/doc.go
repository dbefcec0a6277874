// Package natsconn connects a tokenledger process to NATS: the
// credentials (a .creds file, an NKey seed file, or a user with a password
// file) and the TLS settings every command takes from the same flags, and
// embedded validators from validator.Embed. Secrets are read from files
// when connecting, never taken as values.
package natsconn
