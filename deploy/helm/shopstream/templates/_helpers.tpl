{{/*
Chart name, at most 63 characters (a DNS label).
*/}}
{{- define "shopstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: "<release>-<chart>", or the release name when it already contains
the chart name; at most 63 characters because some Kubernetes name fields are
limited to a DNS label.
*/}}
{{- define "shopstream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "shopstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is
immutable).
*/}}
{{- define "shopstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shopstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels of every resource.
*/}}
{{- define "shopstream.labels" -}}
helm.sh/chart: {{ include "shopstream.chart" . }}
{{ include "shopstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shopstream
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "shopstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shopstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Built-in groups in start order, with the topic domain each consumes. The
binary knows exactly these (cmd/shopstream/config.go allGroups).
*/}}
{{- define "shopstream.groupDomains" -}}
catalog: catalog
inventory: inventory
order-crm: order
order-fraud: order
order-email: order
customer-crm: customer
{{- end }}

{{- define "shopstream.groupOrder" -}}
catalog,inventory,order-crm,order-fraud,order-email,customer-crm
{{- end }}

{{/*
Enabled group names in start order, comma-separated (SHOPSTREAM_GROUPS).
Fails on a group the binary does not know (a typo in values) and when no
group is enabled.
*/}}
{{- define "shopstream.enabledGroups" -}}
{{- $known := splitList "," (include "shopstream.groupOrder" .) }}
{{- range $name, $_ := .Values.groups }}
{{- if not (has $name $known) }}
{{- fail (printf "groups.%s: unknown group; known: %s" $name (join ", " $known)) }}
{{- end }}
{{- end }}
{{- $on := list }}
{{- range $name := $known }}
{{- $g := index $.Values.groups $name | default dict }}
{{- if $g.enabled }}
{{- $on = append $on $name }}
{{- end }}
{{- end }}
{{- if not $on }}
{{- fail "groups: no group is enabled; enable at least one of groups.<name>.enabled" }}
{{- end }}
{{- join "," $on }}
{{- end }}

{{/*
Whether a group that needs a setting is enabled: (dict "root" $ "groups" (list ...)).
*/}}
{{- define "shopstream.anyEnabled" -}}
{{- $on := splitList "," (include "shopstream.enabledGroups" .root) }}
{{- range .groups }}{{ if has . $on }}true{{ end }}{{ end }}
{{- end }}

{{/*
Topic of a group: (dict "root" $ "group" name).
*/}}
{{- define "shopstream.groupTopic" -}}
{{- $domain := get (include "shopstream.groupDomains" .root | fromYaml) .group }}
{{- $topic := index .root.Values.topics.names $domain }}
{{- if not $topic }}
{{- fail (printf "topics.names.%s: empty; group %s consumes it" $domain .group) }}
{{- end }}
{{- $topic }}
{{- end }}

{{/*
Seconds of a Go duration string ("30s", "1m30s", "1.5h", "500ms"), rounded up.
Fails on anything time.ParseDuration would reject (a bare number too).
*/}}
{{- define "shopstream.durationSeconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h))*$" $d) }}
{{- fail (printf "%q is not a Go duration such as 30s, 1m30s or 2h" $d) }}
{{- end }}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h)" $d -1 }}
{{- $num := regexFind "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)" . }}
{{- $unit := trimPrefix $num . }}
{{- $total = addf $total (mulf (float64 $num) (get $units $unit)) }}
{{- end }}
{{- ceil $total | int64 }}
{{- end }}

{{/*
Validated duration value: (dict "value" v "setting" "topology.drainTimeout").
*/}}
{{- define "shopstream.duration" -}}
{{- $d := toString .value }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h))*$" $d) }}
{{- fail (printf "%s: %q is not a Go duration such as 30s, 1m30s or 2h" .setting $d) }}
{{- end }}
{{- $d }}
{{- end }}

{{/*
One group's topology settings (groupDefaults overlaid by groups.<name>.settings,
key by key so that an explicit 0 overrides a default), in the binary's YAML keys.
*/}}
{{- define "shopstream.groupSettings" -}}
{{- $d := .root.Values.groupDefaults }}
{{- $o := (index .root.Values.groups .group).settings | default dict }}
{{- $known := list "concurrency" "maxBuffered" "rateLimit" "burst" "timeout" "retry" "coalesce" }}
{{- range $k, $_ := $o }}
{{- if not (has $k $known) }}
{{- fail (printf "groups.%s.settings.%s: unknown key; known: %s" $.group $k (join ", " $known)) }}
{{- end }}
{{- end }}
{{- $pick := dict }}
{{- range $k := list "concurrency" "maxBuffered" "rateLimit" "burst" "timeout" }}
{{- $_ := set $pick $k (ternary (get $o $k) (get $d $k) (hasKey $o $k)) }}
{{- end }}
{{- $dr := $d.retry | default dict }}
{{- $or := $o.retry | default dict }}
{{- $knownRetry := list "maxAttempts" "initialBackoff" "maxBackoff" "maxElapsed" }}
{{- range $k, $_ := $or }}
{{- if not (has $k $knownRetry) }}
{{- fail (printf "groups.%s.settings.retry.%s: unknown key; known: %s" $.group $k (join ", " $knownRetry)) }}
{{- end }}
{{- end }}
{{- $retry := dict }}
{{- range $k := $knownRetry }}
{{- $_ := set $retry $k (ternary (get $or $k) (get $dr $k) (hasKey $or $k)) }}
{{- end }}
{{- $setting := printf "groups.%s.settings" .group }}
concurrency: {{ $pick.concurrency | int }}
max_buffered: {{ $pick.maxBuffered | int }}
rate_limit: {{ $pick.rateLimit | float64 }}
burst: {{ $pick.burst | int }}
timeout: {{ include "shopstream.duration" (dict "value" $pick.timeout "setting" (printf "%s.timeout" $setting)) }}
retry:
  max_attempts: {{ $retry.maxAttempts | int }}
  initial_backoff: {{ include "shopstream.duration" (dict "value" $retry.initialBackoff "setting" (printf "%s.retry.initialBackoff" $setting)) }}
  max_backoff: {{ include "shopstream.duration" (dict "value" $retry.maxBackoff "setting" (printf "%s.retry.maxBackoff" $setting)) }}
  max_elapsed: {{ include "shopstream.duration" (dict "value" $retry.maxElapsed "setting" (printf "%s.retry.maxElapsed" $setting)) }}
{{- if hasKey $o "coalesce" }}
{{- if and $o.coalesce (not (has .group (list "catalog" "inventory"))) }}
{{- fail (printf "%s.coalesce: only the catalog and inventory groups (version-fenced) can coalesce" $setting) }}
{{- end }}
coalesce: {{ $o.coalesce | default false }}
{{- end }}
{{- end }}

{{/*
The topology file (--config / SHOPSTREAM_CONFIG), in cmd/shopstream/config.go's keys.
*/}}
{{- define "shopstream.topology" -}}
topics:
  catalog: {{ .Values.topics.names.catalog | quote }}
  inventory: {{ .Values.topics.names.inventory | quote }}
  order: {{ .Values.topics.names.order | quote }}
  customer: {{ .Values.topics.names.customer | quote }}
drain_timeout: {{ include "shopstream.duration" (dict "value" .Values.topology.drainTimeout "setting" "topology.drainTimeout") }}
revoke_timeout: {{ include "shopstream.duration" (dict "value" .Values.topology.revokeTimeout "setting" "topology.revokeTimeout") }}
dedupe_ttl: {{ include "shopstream.duration" (dict "value" .Values.topology.dedupeTTL "setting" "topology.dedupeTTL") }}
groups:
{{- range $name := splitList "," (include "shopstream.enabledGroups" .) }}
  {{ $name }}:
    {{- include "shopstream.groupSettings" (dict "root" $ "group" $name) | trim | nindent 4 }}
{{- end }}
{{- end }}

{{/*
Most replicas of KEDA or the HPA: the value, or the partition count.
*/}}
{{- define "shopstream.partitions" -}}
{{- $p := .Values.topics.partitions | default 0 | int }}
{{- if lt $p 1 }}
{{- fail "topics.partitions: must be at least 1" }}
{{- end }}
{{- $p }}
{{- end }}

{{/*
Most replicas of KEDA or the HPA: (dict "root" $ "value" v); 0 or empty means
the partition count, and a value above it is an error (the extra replicas
would only idle).
*/}}
{{- define "shopstream.maxReplicas" -}}
{{- $p := include "shopstream.partitions" .root | int }}
{{- $max := .value | default 0 | int }}
{{- if le $max 0 }}{{ $max = $p }}{{ end }}
{{- if gt $max $p }}
{{- fail (printf "%s: %d is above topics.partitions (%d); replicas beyond the partition count only idle" .setting $max $p) }}
{{- end }}
{{- $max }}
{{- end }}

{{/*
KEDA's name of the SASL mechanism.
*/}}
{{- define "shopstream.kedaSasl" -}}
{{- $m := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" }}
{{- if not (hasKey $m .Values.kafka.sasl.mechanism) }}
{{- fail (printf "kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" .Values.kafka.sasl.mechanism) }}
{{- end }}
{{- get $m .Values.kafka.sasl.mechanism }}
{{- end }}

{{/*
Whether KEDA needs a TriggerAuthentication: SASL credentials or a TLS CA.
*/}}
{{- define "shopstream.kedaAuth" -}}
{{- if or .Values.kafka.sasl.enabled (and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name) }}true{{ end }}
{{- end }}

{{/*
Label matchers of this release's series in the alerts.
*/}}
{{- define "shopstream.ruleSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "namespace=%q, job=%q" .Release.Namespace (include "shopstream.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Brokers, comma-separated.
*/}}
{{- define "shopstream.brokers" -}}
{{- if not .Values.kafka.brokers }}
{{- fail "kafka.brokers: empty; list the seed brokers (host:port)" }}
{{- end }}
{{- join "," .Values.kafka.brokers }}
{{- end }}

{{/*
Labels of an alert: (dict "severity" s "extra" prometheusRule.additionalLabels).
*/}}
{{- define "shopstream.alertLabels" -}}
severity: {{ .severity }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}


{{/*
The bridge's resource name: "<fullname>-bridge", at most 63 characters (the
client Service and the PodDisruptionBudget).
*/}}
{{- define "shopstream.bridge.fullname" -}}
{{- printf "%s-bridge" (include "shopstream.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{/*
The bridge StatefulSet's name: "<fullname>-bridge", at most 52 characters,
the longest a StatefulSet may have (its pods' controller-revision-hash label
is "<name>-<hash of up to 10 characters>", a label value of at most 63). It
is the prefix of the pod names, hence of the Kafka transactional ids. The
same as shopstream.bridge.fullname unless the full name exceeds 45
characters.
*/}}
{{- define "shopstream.bridge.statefulSetName" -}}
{{- printf "%s-bridge" (include "shopstream.fullname" . | trunc 45 | trimSuffix "-") }}
{{- end }}

{{/*
The bridge's headless Service, the StatefulSet's serviceName (immutable):
"<statefulset>-headless", at most 61 characters.
*/}}
{{- define "shopstream.bridge.headlessName" -}}
{{- printf "%s-headless" (include "shopstream.bridge.statefulSetName" .) }}
{{- end }}

{{/*
Replicas of the bridge, validated: a whole number, 0 or more.
*/}}
{{- define "shopstream.bridge.replicas" -}}
{{- $r := toString .Values.bridge.replicaCount }}
{{- if not (regexMatch "^[0-9]+$" $r) }}
{{- fail (printf "bridge.replicaCount: %q is not a whole number of replicas (0 or more)" $r) }}
{{- end }}
{{- $r }}
{{- end }}

{{/*
Selector labels of the bridge. Its name label differs from the consumer's
("<name>-bridge"), so the consumer Deployment's selector, Service, PDB and
ServiceMonitor, which select name and instance, never match a bridge pod.
*/}}
{{- define "shopstream.bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-bridge" (include "shopstream.name" . | trunc 56 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bridge
{{- end }}

{{/*
Common labels of the bridge's resources.
*/}}
{{- define "shopstream.bridge.labels" -}}
helm.sh/chart: {{ include "shopstream.chart" . }}
{{ include "shopstream.bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shopstream
{{- end }}

{{/*
Kafka TLS and SASL environment, shared by the consumer and the bridge.
*/}}
{{- define "shopstream.kafkaEnv" -}}
{{- if .Values.kafka.tls.enabled }}
- name: SHOPSTREAM_KAFKA_TLS
  value: "true"
{{- if .Values.kafka.tls.caSecret.name }}
- name: SHOPSTREAM_KAFKA_TLS_CA_FILE
  value: /etc/shopstream/kafka-ca/{{ .Values.kafka.tls.caSecret.key }}
{{- end }}
{{- end }}
{{- if .Values.kafka.sasl.enabled }}
- name: SHOPSTREAM_KAFKA_SASL_MECHANISM
  # Kafka's mechanism name: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: SHOPSTREAM_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.secretName: SASL needs the Secret holding its username and password" .Values.kafka.sasl.secretName }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: SHOPSTREAM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.secretName }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/*
Whether the Kafka CA bundle is mounted (TLS with a CA Secret).
*/}}
{{- define "shopstream.kafkaCA" -}}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}true{{ end }}
{{- end }}

{{/*
The Kafka CA volume (with shopstream.kafkaCA).
*/}}
{{- define "shopstream.kafkaCAVolume" -}}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.caSecret.key }}
        path: {{ .Values.kafka.tls.caSecret.key }}
{{- end }}

{{/*
The Redis CA bundle's source: "secret", "configMap" or "" (none); both set
is an error.
*/}}
{{- define "shopstream.redisCA" -}}
{{- $ca := .Values.redis.tls }}
{{- if and $ca.caSecret.name $ca.caConfigMap.name }}
{{- fail "redis.tls: set caSecret.name or caConfigMap.name, not both" }}
{{- end }}
{{- if $ca.caSecret.name }}secret{{ else if $ca.caConfigMap.name }}configMap{{ end }}
{{- end }}

{{/*
Key of the Redis CA bundle in its Secret or ConfigMap.
*/}}
{{- define "shopstream.redisCAKey" -}}
{{- if eq (include "shopstream.redisCA" .) "secret" }}{{ .Values.redis.tls.caSecret.key }}{{ else }}{{ .Values.redis.tls.caConfigMap.key }}{{ end }}
{{- end }}
