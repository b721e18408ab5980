// Package admin operates shopstream's consumer groups and topics through
// franz-go's kadm: lag per group, topic and partition (with the age of the
// oldest unconsumed record), offset resets with the semantics of Kafka's own
// kafka-consumer-groups --reset-offsets (replay), rewinding the version fence
// and event-id dedupe for exactly the replayed records, dead-letter browsing
// and redrive, and topic provisioning.
//
// Every function takes a *kgo.Client the caller owns. Functions that read
// records open a short-lived direct consumer that connects as that client
// does (seed brokers, dialer, TLS, SASL) and close it before returning.
package admin
