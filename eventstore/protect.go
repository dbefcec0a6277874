package eventstore

// ProtectedAPISubjects lists the JetStream API subjects (under the default
// "$JS.API." prefix) through which the named streams' history could be
// removed or rewritten: deleting the stream, updating its configuration
// (adding an age or size limit removes messages even from a stream that
// denies deletes), purging it and deleting a message. The stream settings
// refuse purges and message deletes, but nothing in a stream's
// configuration refuses deleting the whole stream: only permissions do.
// Deny publishing to these subjects to every user except the operator's;
// such a user can still create the streams and open an up-to-date store.
// A stream name may be "*" to protect every stream.
func ProtectedAPISubjects(streams ...string) []string {
	out := make([]string, 0, 4*len(streams))
	for _, name := range streams {
		out = append(out,
			"$JS.API.STREAM.DELETE."+name,
			"$JS.API.STREAM.UPDATE."+name,
			"$JS.API.STREAM.PURGE."+name,
			"$JS.API.STREAM.MSG.DELETE."+name,
		)
	}
	return out
}

// APINodeDeniedAPISubjects lists the JetStream API subjects (under the
// default "$JS.API." prefix) that the credentials of API nodes and embedded
// validators must be denied on top of ProtectedAPISubjects: creating
// durable consumers the legacy way, and deleting, creating or updating the
// workers' durable consumers (durables: the names `project` consumes
// under, on every named stream). Without it an API node's credentials
// could delete or reconfigure the consumer a projector depends on. An API
// node reads only through ordered consumers of its own, under generated
// names, which it creates and deletes as soon as a read ends (a consumer
// left to the server's inactivity cleanup keeps its pull requests, and so
// the server's work, alive meanwhile); none of that is denied. Stream
// names may be "*".
func APINodeDeniedAPISubjects(streams, durables []string) []string {
	out := ProtectedAPISubjects(streams...)
	for _, name := range streams {
		out = append(out, "$JS.API.CONSUMER.DURABLE.CREATE."+name+".*")
		for _, d := range durables {
			out = append(out,
				"$JS.API.CONSUMER.DELETE."+name+"."+d,
				"$JS.API.CONSUMER.CREATE."+name+"."+d,
				"$JS.API.CONSUMER.CREATE."+name+"."+d+".>",
			)
		}
	}
	return out
}
