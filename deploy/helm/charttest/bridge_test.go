package charttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// bridgeEnvNames are every variable the chart may set on the bridge, with
// whether its value must come from a Secret (BRIDGE_HMAC_SECRET_<n> are the
// chart's own, joined into SHOPSTREAM_BRIDGE_SECRETS).
var bridgeEnvNames = map[string]bool{
	"SHOPSTREAM_CONFIG":                  false,
	"SHOPSTREAM_BROKERS":                 false,
	"SHOPSTREAM_BRIDGE_LISTEN":           false,
	"SHOPSTREAM_LOG_LEVEL":               false,
	"SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID": false,
	"SHOPSTREAM_BRIDGE_SECRETS":          false, // a secretKeyRef, or $(BRIDGE_HMAC_SECRET_<n>) references
	"SHOPSTREAM_KAFKA_TLS":               false,
	"SHOPSTREAM_KAFKA_TLS_CA_FILE":       false,
	"SHOPSTREAM_KAFKA_SASL_MECHANISM":    false,
	"SHOPSTREAM_KAFKA_SASL_USERNAME":     true,
	"SHOPSTREAM_KAFKA_SASL_PASSWORD":     true,
}

func bridgeContainer(t testing.TB, m *manifests) corev1.Container {
	t.Helper()
	cs := m.Bridge.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "bridge" {
		t.Fatalf("bridge containers = %d, want one named bridge", len(cs))
	}
	return cs[0]
}

func bridgeSelector(s scenario) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "shopstream-bridge", "app.kubernetes.io/instance": s.release, "app.kubernetes.io/component": "bridge"}
}

// The bridge is a second Deployment and Service, only with bridge.enabled:
// `shopstream bridge` with its HMAC secrets from the Secret, a transactional
// id per pod, the consumer's Kafka settings and topology, probes on its own
// port, and selectors that never cross the consumer's.
func TestBridge(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			if (m.Bridge != nil) != (s.bridge != nil) || (m.BridgeService != nil) != (s.bridge != nil) {
				t.Fatalf("bridge Deployment %v, Service %v; want both = %v", m.Bridge != nil, m.BridgeService != nil, s.bridge != nil)
			}
			if s.bridge == nil {
				return
			}
			w, d, svc := s.bridge, m.Bridge, m.BridgeService

			// Selectors: each workload's pods are selected by its own
			// objects only.
			consumerPod, bridgePod := labels.Set(m.Deployment.Spec.Template.Labels), labels.Set(d.Spec.Template.Labels)
			if !equalMaps(d.Spec.Selector.MatchLabels, bridgeSelector(s)) || !subset(bridgeSelector(s), bridgePod) {
				t.Errorf("bridge selector %v, pod labels %v; want selector %v", d.Spec.Selector.MatchLabels, bridgePod, bridgeSelector(s))
			}
			for what, sel := range map[string]map[string]string{
				"consumer Deployment": m.Deployment.Spec.Selector.MatchLabels,
				"consumer Service":    m.Service.Spec.Selector,
				"consumer PDB":        m.PDB.Spec.Selector.MatchLabels,
			} {
				if labels.SelectorFromSet(sel).Matches(bridgePod) {
					t.Errorf("the %s selector %v selects the bridge's pods %v", what, sel, bridgePod)
				}
			}
			if labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(consumerPod) || labels.SelectorFromSet(svc.Spec.Selector).Matches(consumerPod) {
				t.Errorf("the bridge selects the consumer's pods %v", consumerPod)
			}
			if sm := m.ServiceMonitor; sm != nil && labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
				t.Errorf("the consumer's ServiceMonitor selects the bridge Service")
			}
			if !equalMaps(svc.Spec.Selector, bridgeSelector(s)) {
				t.Errorf("bridge Service selector = %v, want %v", svc.Spec.Selector, bridgeSelector(s))
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].Port != w.svcPort || svc.Spec.Ports[0].TargetPort.String() != "http" {
				t.Errorf("bridge Service ports = %+v, want http %d → http", svc.Spec.Ports, w.svcPort)
			}

			if d.Spec.Replicas == nil || *d.Spec.Replicas != w.replicas {
				t.Errorf("bridge replicas = %v, want %d", d.Spec.Replicas, w.replicas)
			}
			ps := d.Spec.Template.Spec
			if ps.ServiceAccountName != s.fullname || ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Errorf("bridge serviceAccountName %q, automount %v; want %s without a token", ps.ServiceAccountName, ps.AutomountServiceAccountToken, s.fullname)
			}
			if psc := ps.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil {
				t.Errorf("bridge pod securityContext = %+v, want the chart's (non-root, seccomp)", psc)
			}
			c := bridgeContainer(t, m)
			if len(c.Command) != 0 || !slices.Equal(c.Args, []string{"bridge"}) || c.Image != container(t, m).Image {
				t.Errorf("bridge command %v args %v image %q; want the consumer's image with args [bridge]", c.Command, c.Args, c.Image)
			}
			if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != w.port {
				t.Errorf("bridge ports = %+v, want http %d", c.Ports, w.port)
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
					t.Errorf("bridge %s probe = %+v, want GET %s on port http", p.name, p.probe, p.path)
				}
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("bridge container securityContext = %+v", sc)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("bridge resources = %+v, want memory request and limit", c.Resources)
			}

			// Environment.
			env := envMap(c)
			if len(env) != len(c.Env) {
				t.Errorf("duplicate bridge environment variables: %v", c.Env)
			}
			hmacVars := map[string]string{} // variable → Secret key
			for name, e := range env {
				if strings.HasPrefix(name, "BRIDGE_HMAC_SECRET_") {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != w.secret {
						t.Errorf("env %s must come from Secret %s, got %+v", name, w.secret, e)
					} else {
						hmacVars[name] = e.ValueFrom.SecretKeyRef.Key
					}
					continue
				}
				secret, known := bridgeEnvNames[name]
				switch {
				case !known:
					t.Errorf("bridge env %s: not a setting the chart defines", name)
				case secret && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil):
					t.Errorf("bridge env %s must come from a secretKeyRef, got %+v", name, e)
				}
			}
			if got := env["SHOPSTREAM_BRIDGE_LISTEN"].Value; got != fmt.Sprintf(":%d", w.port) {
				t.Errorf("SHOPSTREAM_BRIDGE_LISTEN = %q, want :%d (the container port and the probes)", got, w.port)
			}
			if got := env["SHOPSTREAM_BROKERS"].Value; got != envMap(container(t, m))["SHOPSTREAM_BROKERS"].Value {
				t.Errorf("bridge SHOPSTREAM_BROKERS = %q, want the consumer's", got)
			}
			if f := env["SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID = %+v, want the pod name (fieldRef metadata.name)", env["SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"])
			}
			// The HMAC secrets: every key of the Secret, in order.
			secrets := env["SHOPSTREAM_BRIDGE_SECRETS"]
			var gotKeys []string
			switch {
			case secrets.ValueFrom != nil && secrets.ValueFrom.SecretKeyRef != nil:
				if secrets.ValueFrom.SecretKeyRef.Name == w.secret {
					gotKeys = []string{secrets.ValueFrom.SecretKeyRef.Key}
				}
			default:
				pos := map[string]int{}
				for i, e := range c.Env {
					pos[e.Name] = i
				}
				for _, ref := range strings.Split(secrets.Value, ",") {
					m := varRef.FindStringSubmatch(ref)
					if m == nil || m[0] != ref || pos[m[1]] >= pos["SHOPSTREAM_BRIDGE_SECRETS"] {
						t.Errorf("SHOPSTREAM_BRIDGE_SECRETS %q: %q is not a reference to a variable defined before it", secrets.Value, ref)
						continue
					}
					gotKeys = append(gotKeys, hmacVars[m[1]])
				}
			}
			if !slices.Equal(gotKeys, w.keys) {
				t.Errorf("SHOPSTREAM_BRIDGE_SECRETS = %+v: keys %q of Secret %s, want %q", secrets, gotKeys, w.secret, w.keys)
			}
			// Kafka exactly as the consumer; no Redis.
			consumer := envMap(container(t, m))
			for name := range bridgeEnvNames {
				if strings.HasPrefix(name, "SHOPSTREAM_KAFKA_") {
					if be, ce := env[name], consumer[name]; fmt.Sprint(be) != fmt.Sprint(ce) {
						t.Errorf("bridge %s = %+v, consumer's = %+v; want the same", name, be, ce)
					}
				}
			}
			if s.caSecret != "" {
				checkMountedFile(t, c, ps, "SHOPSTREAM_KAFKA_TLS_CA_FILE", mountedFile{"secret", s.caSecret, ""})
			}
			found := false
			for _, vm := range c.VolumeMounts {
				for _, v := range ps.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == m.Config.Name && env["SHOPSTREAM_CONFIG"].Value == vm.MountPath+"/topology.yaml" {
						found = true
					}
				}
				if vm.Name == "tmp" && vm.MountPath != "/tmp" {
					t.Errorf("bridge tmp mount at %s", vm.MountPath)
				}
			}
			if !found {
				t.Errorf("bridge SHOPSTREAM_CONFIG %q is not topology.yaml of a mount of ConfigMap %s", env["SHOPSTREAM_CONFIG"].Value, m.Config.Name)
			}
			if got, want := d.Spec.Template.Annotations["checksum/config"], m.Deployment.Spec.Template.Annotations["checksum/config"]; got != want {
				t.Errorf("bridge checksum/config = %q, want the consumer's %q: a topic rename must roll the bridge", got, want)
			}
		})
	}
}
