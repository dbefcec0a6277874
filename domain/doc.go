// Package domain is the pure core of tokenledger: the token and owner
// aggregates, the events they record, the issuing policy and the secret
// format.
//
// Nothing here does I/O. Commands (methods on the aggregates and the issue
// functions) validate their input against the current state and the policy,
// then record events; Apply functions only apply an already recorded event and
// never fail, so replaying a stream of events is deterministic. Time comes in
// through a Clock or an explicit instant; randomness through an io.Reader.
//
// Event names are stable strings (for example "token.issued.v1") registered in
// a Registry that callers create and pass around; they are never derived from
// Go type names, so renaming a type never orphans stored history.
package domain
