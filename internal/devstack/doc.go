// Package devstack is shopstream's embedded stack for `shopstream demo`,
// `shopstream dev-broker` and tests:
//
//   - StartKafka: an in-process Kafka (kfake) with the default topics and
//     their dead-letter topics created;
//   - a Simulator: one HTTP server standing in for Magento's REST API and
//     the CRM, fraud and email webhooks, recording every applied call and
//     able to inject failures and latency;
//   - Generate: realistic contract traffic with duplicates, out-of-order
//     (stale) versions and poison records, and a Manifest of what it wrote;
//   - Check: a Verdict comparing the Manifest with the sink calls and the
//     dead-letter records — nothing lost, no version regressions, every
//     poison record dead-lettered.
//
// Embedded Redis is miniredis: call miniredis.Run() (or miniredis.RunT in
// tests) and pass "redis://"+m.Addr() to the processor; devstack adds
// nothing to it. Tests that need a real Redis use internal/redistest.
package devstack
