// Package charttest proves the Helm chart in deploy/helm/shopstream with the
// real tools: helm lint and helm template for the default values and every
// ci/*-values.yaml scenario; every rendered document decoded strictly (unknown,
// duplicate and wrongly-cased fields are errors, as with the API server's
// strict field validation) into the Kubernetes API types, KEDA's types and
// prometheus-operator's types; every PromQL expression of the alerts and the
// dashboard parsed by Prometheus' own parser and the rules validated as
// `promtool check rules` does; and the real shopstream binary run with the
// rendered environment and topology, against an embedded Kafka, an embedded
// Redis and the sink simulator, so that every metric the alerts and the
// dashboard name is checked against what the processor really exports.
//
// It is a separate module so that the main module does not depend on
// Kubernetes, KEDA or Prometheus server code. Run it with `make chart-test`
// (part of `make test`); it needs helm: $HELM, helm on PATH, or
// `go install helm.sh/helm/v3/cmd/helm@v3.22.0`.
package charttest
