// Package clustertest runs the fault tests of a tokenledger cluster on real
// containers: deploy/compose.yaml's topology (three nats-server nodes in one
// JetStream cluster, two API nodes, two projectors, the set-up services),
// built from the images of deploy/ and started with docker-compose under a
// project name of the test's own, with PostgreSQL on the Docker host.
//
// Each test puts a steady issue load on both API nodes and breaks the
// cluster the way production breaks: kill -9 of the stream leader (docker
// kill), a network partition of one NATS node, follower or leader (docker
// network disconnect), a rolling restart of all three nodes. It then
// asserts that no acknowledged issue was lost (each is in the stream and,
// once the projectors catch up, in the read model), that no client saw an
// error while a quorum stood, that the clients of an API node cut off with
// the partitioned node got 503s and not hangs, and that the replicas
// converged. Everything is torn down at the end, also on failure.
//
// The tests carry the build tag "cluster", so `make test` never runs them:
// `make test-cluster` builds the images (make images) and runs
//
//	go test -tags cluster -count=1 -v ./internal/clustertest
//
// with TOKENLEDGER_IMAGE and NATS_IMAGE naming the images. They need a
// Docker engine, docker-compose and the PostgreSQL server binaries.
package clustertest
