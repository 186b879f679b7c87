// Package e2e holds Jackalope's end-to-end tests, and nothing else: the
// all-in-one run in process through app.AllInOne, the cmd/jackalope binary
// killed and restarted on its data directory, and the installer, ingest and
// two dispatchers as separate processes against an external NATS server and
// PostgreSQL. Slack is always the fake of internal/slack/slacktest, reached
// over loopback HTTP.
//
// The split-process test runs only when JACKALOPE_TEST_NATS_URL and
// JACKALOPE_TEST_DATABASE_URL are set, and purges that NATS server's
// Jackalope streams first, so this package runs after the others (see the
// Makefile). The cluster test (TestCluster: the split services on three
// clustered nats-server processes, a node killed and the nodes rolled under
// load) runs only when JACKALOPE_TEST_CLUSTER=1 (make cluster-test, CI).
// The tests that build binaries skip under -short.
package e2e
