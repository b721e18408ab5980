package charttest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// kafkaTriggerParams are the metadata keys KEDA's kafka scaler reads from a
// trigger, with a check of the value: from the `keda:"name=...,
// order=triggerMetadata..."` tags of kafkaMetadata in
// github.com/kedacore/keda/v2@v2.21.0 pkg/scalers/kafka_scaler.go (that
// package pulls in every scaler's SDK, so it is not imported here). A key
// KEDA does not know is silently ignored by KEDA, hence this check.
var kafkaTriggerParams = map[string]func(string) error{
	"bootstrapServers":                   nonEmpty,
	"consumerGroup":                      nonEmpty,
	"topic":                              nonEmpty,
	"partitionLimitation":                nonEmpty,
	"lagThreshold":                       positiveInt,
	"activationLagThreshold":             nonNegativeInt,
	"offsetResetPolicy":                  oneOf("latest", "earliest"),
	"allowIdleConsumers":                 isBool,
	"excludePersistentLag":               isBool,
	"scaleToZeroOnInvalidOffset":         isBool,
	"limitToPartitionsWithLag":           isBool,
	"ensureEvenDistributionOfPartitions": isBool,
	"fullMetadata":                       isBool,
	"version":                            nonEmpty,
	"tls":                                oneOf("enable", "disable"),
	"unsafeSsl":                          isBool,
	"sasl":                               oneOf("none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"),
	"saslTokenProvider":                  oneOf("bearer", "aws_msk_iam"),
	"awsRegion":                          nonEmpty,
}

// kafkaAuthParams are the parameters KEDA's kafka scaler reads from a
// TriggerAuthentication (order=authParams in the same struct).
var kafkaAuthParams = []string{"tls", "ca", "cert", "key", "keyPassword", "sasl", "username", "password",
	"saslTokenProvider", "scopes", "oauthTokenEndpointUri", "oauthExtensions",
	"keytab", "ccacheName", "realm", "kerberosConfig", "kerberosServiceName", "kerberosDisableFAST"}

func nonEmpty(v string) error {
	if v == "" {
		return fmt.Errorf("empty")
	}
	return nil
}

func positiveInt(v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("%q is not a positive integer", v)
	}
	return nil
}

func nonNegativeInt(v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a non-negative integer", v)
	}
	return nil
}

func isBool(v string) error {
	if _, err := strconv.ParseBool(v); err != nil {
		return fmt.Errorf("%q is not a boolean", v)
	}
	return nil
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("%q is not one of %v", v, vals)
		}
		return nil
	}
}

// groupDomain maps each built-in group to the domain of its topic, from the
// main module's own defaults (devstack.DefaultGroups and topics.DefaultTopic).
func groupDomain(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, g := range devstack.DefaultGroups() {
		for _, d := range []topics.Domain{topics.DomainCatalog, topics.DomainInventory, topics.DomainOrder, topics.DomainCustomer} {
			if topics.DefaultTopic(d) == g.Topic {
				out[g.Name] = string(d)
			}
		}
		if out[g.Name] == "" {
			t.Fatalf("group %s: topic %s is no domain's default", g.Name, g.Topic)
		}
	}
	if !slices.Equal(sortedCopy(slices.Collect(maps.Keys(out))), sortedCopy(allGroups)) {
		t.Fatalf("the binary's groups %v differ from the chart's %v", slices.Collect(maps.Keys(out)), allGroups)
	}
	return out
}

// The ScaledObject has one kafka trigger per enabled group, with the group's
// id and topic (as the topology and the binary's defaults say), the lag
// settings and no idle consumers; its replica bounds stop at the partitions.
func TestScaledObject(t *testing.T) {
	domains := groupDomain(t)
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			so := m.ScaledObject
			if (so != nil) != s.keda {
				t.Fatalf("ScaledObject rendered = %v, want %v", so != nil, s.keda)
			}
			if so == nil {
				return
			}
			if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
				t.Error(err)
			}
			if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(so); err != nil {
				t.Error(err)
			}
			if err := kedav1alpha1.CheckFallbackValid(so); err != nil {
				t.Error(err)
			}
			ref := so.Spec.ScaleTargetRef
			if ref == nil || ref.Name != m.Deployment.Name || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
				t.Errorf("scaleTargetRef = %+v, want the Deployment %s", ref, m.Deployment.Name)
			}
			if got := so.Spec.MinReplicaCount; got == nil || *got != s.minRep {
				t.Errorf("minReplicaCount = %v, want %d", got, s.minRep)
			}
			if got := so.Spec.MaxReplicaCount; got == nil || *got != s.maxRep {
				t.Errorf("maxReplicaCount = %v, want %d", got, s.maxRep)
			}
			hpaName := "keda-hpa-" + so.Name
			if a := so.Spec.Advanced; a != nil && a.HorizontalPodAutoscalerConfig != nil && a.HorizontalPodAutoscalerConfig.Name != "" {
				hpaName = a.HorizontalPodAutoscalerConfig.Name
			}
			if len(hpaName) > 63 {
				t.Errorf("KEDA's HPA name %s is longer than 63 characters; KEDA rejects the ScaledObject", hpaName)
			}
			env := envMap(container(t, m))
			var got []string
			for _, tr := range so.Spec.Triggers {
				if tr.Type != "kafka" {
					t.Errorf("trigger %s: type %q, want kafka", tr.Name, tr.Type)
					continue
				}
				md := tr.Metadata
				for k, v := range md {
					check, ok := kafkaTriggerParams[k]
					if !ok {
						t.Errorf("trigger %s: KEDA's kafka scaler has no metadata %q", tr.Name, k)
						continue
					}
					if err := check(v); err != nil {
						t.Errorf("trigger %s: %s: %v", tr.Name, k, err)
					}
				}
				group := strings.TrimPrefix(md["consumerGroup"], "shopstream.")
				got = append(got, group)
				if tr.Name != group {
					t.Errorf("trigger %q is for group %q; name it after the group", tr.Name, md["consumerGroup"])
				}
				if want := s.topics[domains[group]]; md["topic"] != want {
					t.Errorf("trigger %s: topic %q, want %q", tr.Name, md["topic"], want)
				}
				if md["bootstrapServers"] != env["SHOPSTREAM_BROKERS"].Value {
					t.Errorf("trigger %s: bootstrapServers %q, the pods use %q", tr.Name, md["bootstrapServers"], env["SHOPSTREAM_BROKERS"].Value)
				}
				for k, want := range map[string]string{"offsetResetPolicy": "earliest", "allowIdleConsumers": "false"} {
					if md[k] != want {
						t.Errorf("trigger %s: %s = %q, want %q", tr.Name, k, md[k], want)
					}
				}
				for _, k := range []string{"lagThreshold", "activationLagThreshold"} {
					if _, ok := md[k]; !ok {
						t.Errorf("trigger %s: no %s", tr.Name, k)
					}
				}
				if s.sasl != (md["sasl"] != "") || (s.sasl && md["sasl"] != kedaSasl(env["SHOPSTREAM_KAFKA_SASL_MECHANISM"].Value)) {
					t.Errorf("trigger %s: sasl %q with the pods' mechanism %q", tr.Name, md["sasl"], env["SHOPSTREAM_KAFKA_SASL_MECHANISM"].Value)
				}
				if s.tls != (md["tls"] == "enable") {
					t.Errorf("trigger %s: tls %q, want enable = %v", tr.Name, md["tls"], s.tls)
				}
				wantAuth := s.sasl || s.caSecret != ""
				if (tr.AuthenticationRef != nil) != wantAuth || (wantAuth && (m.TriggerAuth == nil || tr.AuthenticationRef.Name != m.TriggerAuth.Name ||
					(tr.AuthenticationRef.Kind != "" && tr.AuthenticationRef.Kind != "TriggerAuthentication"))) {
					t.Errorf("trigger %s: authenticationRef %+v, want the chart's TriggerAuthentication = %v", tr.Name, tr.AuthenticationRef, wantAuth)
				}
			}
			if !slices.Equal(got, s.groups) {
				t.Errorf("triggers for groups %v, want %v", got, s.groups)
			}
		})
	}
}

func kedaSasl(mechanism string) string {
	return map[string]string{"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}[mechanism]
}

// KEDA reads the same Secrets as the pods.
func TestTriggerAuthentication(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			ta := m.TriggerAuth
			if want := s.keda && (s.sasl || s.caSecret != ""); (ta != nil) != want {
				t.Fatalf("TriggerAuthentication rendered = %v, want %v", ta != nil, want)
			}
			if ta == nil {
				return
			}
			if _, err := ta.ValidateCreate(nil); err != nil {
				t.Error(err)
			}
			env := envMap(container(t, m))
			want := map[string]string{}
			if s.sasl {
				for param, name := range map[string]string{"username": "SHOPSTREAM_KAFKA_SASL_USERNAME", "password": "SHOPSTREAM_KAFKA_SASL_PASSWORD"} {
					ref := env[name].ValueFrom.SecretKeyRef
					want[param] = ref.Name + "/" + ref.Key
				}
			}
			if s.caSecret != "" {
				for _, v := range m.Deployment.Spec.Template.Spec.Volumes {
					if v.Name == "kafka-ca" {
						want["ca"] = v.Secret.SecretName + "/" + v.Secret.Items[0].Key
					}
				}
			}
			got := map[string]string{}
			for _, r := range ta.Spec.SecretTargetRef {
				if !slices.Contains(kafkaAuthParams, r.Parameter) {
					t.Errorf("parameter %q is not one KEDA's kafka scaler reads", r.Parameter)
				}
				got[r.Parameter] = r.Name + "/" + r.Key
			}
			if !equalMaps(got, want) {
				t.Errorf("secretTargetRef = %v, want the pods' Secrets %v", got, want)
			}
		})
	}
}

func TestHorizontalPodAutoscaler(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			h := m.HPA
			if (h != nil) != s.hpa {
				t.Fatalf("HPA rendered = %v, want %v", h != nil, s.hpa)
			}
			if h == nil {
				return
			}
			ref := h.Spec.ScaleTargetRef
			if ref.Name != m.Deployment.Name || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
				t.Errorf("scaleTargetRef = %+v", ref)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != s.minRep || h.Spec.MaxReplicas != s.maxRep {
				t.Errorf("replicas %v..%d, want %d..%d", h.Spec.MinReplicas, h.Spec.MaxReplicas, s.minRep, s.maxRep)
			}
			if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Type != autoscalingv2.ResourceMetricSourceType ||
				h.Spec.Metrics[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType {
				t.Errorf("metrics = %+v, want CPU utilization", h.Spec.Metrics)
			}
		})
	}
}
