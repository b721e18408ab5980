package charttest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
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

// The bridge is a StatefulSet with a client Service, a headless Service and,
// above one replica, a PodDisruptionBudget, only with bridge.enabled:
// `shopstream bridge` with its HMAC secrets from the Secret, its pod name —
// stable across restarts in a StatefulSet — as its transactional id, the
// consumer's Kafka settings and topology, probes on its own port, and
// selectors that never cross the consumer's.
func TestBridge(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			on := s.bridge != nil
			if (m.Bridge != nil) != on || (m.BridgeService != nil) != on || (m.BridgeHeadless != nil) != on {
				t.Fatalf("bridge StatefulSet %v, Service %v, headless Service %v; want all = %v",
					m.Bridge != nil, m.BridgeService != nil, m.BridgeHeadless != nil, on)
			}
			if wantPDB := on && s.bridge.replicas > 1; (m.BridgePDB != nil) != wantPDB {
				t.Fatalf("bridge PodDisruptionBudget %v, want %v", m.BridgePDB != nil, wantPDB)
			}
			if !on {
				return
			}
			w, d, svc, headless := s.bridge, m.Bridge, m.BridgeService, m.BridgeHeadless

			// The StatefulSet: stable pod names <fullname>-bridge-<ordinal>,
			// governed by the headless Service; nothing else stateful.
			if d.Name != s.fullname+"-bridge" {
				t.Errorf("bridge StatefulSet name %q, want %s-bridge", d.Name, s.fullname)
			}
			if d.Spec.ServiceName != headless.Name || headless.Name != s.fullname+"-bridge-headless" {
				t.Errorf("bridge serviceName %q, headless Service %q; want both %s-bridge-headless", d.Spec.ServiceName, headless.Name, s.fullname)
			}
			// The bridge's own shutdown takes up to 3 × produce timeout + 5 s.
			if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 35 {
				t.Errorf("bridge terminationGracePeriodSeconds %v, want at least the bridge's 35 s shutdown", g)
			}
			if d.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
				t.Errorf("bridge podManagementPolicy %q, want Parallel (the pods do not depend on each other)", d.Spec.PodManagementPolicy)
			}
			if u := d.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateStatefulSetStrategyType || u.RollingUpdate != nil {
				t.Errorf("bridge updateStrategy %+v, want RollingUpdate, one pod at a time", u)
			}
			if len(d.Spec.VolumeClaimTemplates) != 0 || d.Spec.PersistentVolumeClaimRetentionPolicy != nil {
				t.Errorf("bridge volumeClaimTemplates %v: the bridge keeps no state but its name", d.Spec.VolumeClaimTemplates)
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas != w.replicas {
				t.Errorf("bridge replicas = %v, want %d", d.Spec.Replicas, w.replicas)
			}
			if ps := d.Spec.Template.Spec; ps.Hostname != "" || ps.Subdomain != "" || ps.SetHostnameAsFQDN != nil {
				t.Errorf("bridge hostname %q, subdomain %q: the StatefulSet sets them", ps.Hostname, ps.Subdomain)
			}

			// Selectors: each workload's pods are selected by its own
			// objects only.
			consumerPod, bridgePod := labels.Set(m.Deployment.Spec.Template.Labels), labels.Set(d.Spec.Template.Labels)
			if !equalMaps(d.Spec.Selector.MatchLabels, bridgeSelector(s)) || len(d.Spec.Selector.MatchExpressions) != 0 || !subset(bridgeSelector(s), bridgePod) {
				t.Errorf("bridge selector %v, pod labels %v; want selector %v", d.Spec.Selector, bridgePod, bridgeSelector(s))
			}
			consumerSelectors := map[string]map[string]string{
				"consumer Deployment": m.Deployment.Spec.Selector.MatchLabels,
				"consumer Service":    m.Service.Spec.Selector,
				"consumer PDB":        m.PDB.Spec.Selector.MatchLabels,
			}
			for what, sel := range consumerSelectors {
				if labels.SelectorFromSet(sel).Matches(bridgePod) {
					t.Errorf("the %s selector %v selects the bridge's pods %v", what, sel, bridgePod)
				}
			}
			bridgeSelectors := map[string]map[string]string{
				"bridge StatefulSet":      d.Spec.Selector.MatchLabels,
				"bridge Service":          svc.Spec.Selector,
				"bridge headless Service": headless.Spec.Selector,
			}
			if pdb := m.BridgePDB; pdb != nil {
				bridgeSelectors["bridge PDB"] = pdb.Spec.Selector.MatchLabels
			}
			for what, sel := range bridgeSelectors {
				if !equalMaps(sel, bridgeSelector(s)) {
					t.Errorf("%s selector = %v, want %v", what, sel, bridgeSelector(s))
				}
				if labels.SelectorFromSet(sel).Matches(consumerPod) {
					t.Errorf("the %s selector %v selects the consumer's pods %v", what, sel, consumerPod)
				}
			}
			if sm := m.ServiceMonitor; sm != nil {
				for _, bs := range []*corev1.Service{svc, headless} {
					if labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(bs.Labels)) {
						t.Errorf("the consumer's ServiceMonitor selects the bridge Service %s", bs.Name)
					}
				}
			}
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				t.Errorf("the bridge's client Service %s is headless; it is the one Magento calls", svc.Name)
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].Port != w.svcPort || svc.Spec.Ports[0].TargetPort.String() != "http" {
				t.Errorf("bridge Service ports = %+v, want http %d → http", svc.Spec.Ports, w.svcPort)
			}
			if headless.Spec.ClusterIP != corev1.ClusterIPNone || (headless.Spec.Type != "" && headless.Spec.Type != corev1.ServiceTypeClusterIP) {
				t.Errorf("bridge headless Service type %q clusterIP %q, want ClusterIP None", headless.Spec.Type, headless.Spec.ClusterIP)
			}
			if p := headless.Spec.Ports; len(p) != 1 || p[0].Name != "http" || p[0].Port != w.port || p[0].TargetPort.String() != "http" {
				t.Errorf("bridge headless Service ports = %+v, want http %d → http", p, w.port)
			}
			if pdb := m.BridgePDB; pdb != nil {
				if pdb.Spec.MinAvailable != nil || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" {
					t.Errorf("bridge PDB minAvailable %v maxUnavailable %v, want maxUnavailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
				}
				if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(bridgePod) {
					t.Errorf("bridge PDB selector %v does not select the bridge's pods %v", pdb.Spec.Selector, bridgePod)
				}
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
			// The transactional id is the pod name, <statefulset>-<ordinal>:
			// its replacement after a crash has the same one.
			if e := env["SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"]; e.Value != "" || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil ||
				e.ValueFrom.FieldRef.FieldPath != "metadata.name" || (e.ValueFrom.FieldRef.APIVersion != "" && e.ValueFrom.FieldRef.APIVersion != "v1") {
				t.Errorf("SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID = %+v, want the pod name (fieldRef metadata.name)", e)
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

// The bridge's replica count decides its PodDisruptionBudget; values that
// only made sense for a Deployment still render; a full name of any length
// gives valid names (a StatefulSet's at most 52 characters).
func TestBridgeVariants(t *testing.T) {
	base := []string{"--set", "bridge.enabled=true", "--set", "bridge.hmac.existingSecret=hmac"}
	long := strings.Repeat("a", 50) + "-" + strings.Repeat("b", 12) // 63 characters
	cases := []struct {
		name     string
		set      []string
		fullname string
		replicas int32
		pdb      bool
	}{
		{"defaults", nil, "v-shopstream", 2, true},
		{"one replica", []string{"bridge.replicaCount=1"}, "v-shopstream", 1, false},
		{"scaled to zero", []string{"bridge.replicaCount=0"}, "v-shopstream", 0, false},
		{"PDBs off", []string{"podDisruptionBudget.enabled=false"}, "v-shopstream", 2, false},
		// One replica may keep a fixed id (it cannot fence a sibling).
		{"one replica, own id", []string{"bridge.replicaCount=1", "bridge.extraEnv[0].name=SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID",
			"bridge.extraEnv[0].value=shopstream-bridge-main"}, "v-shopstream", 1, false},
		// The consumer's Deployment strategy stays a value; the StatefulSet
		// ignores it (strict decoding refuses a `strategy` field there).
		{"consumer strategy", []string{"strategy.rollingUpdate.maxSurge=2"}, "v-shopstream", 2, true},
		{"long full name", []string{"fullnameOverride=" + long}, long, 2, true},
		{"name ending in a dash when cut", []string{"fullnameOverride=" + strings.Repeat("c", 44) + "-" + strings.Repeat("d", 10)},
			strings.Repeat("c", 44) + "-" + strings.Repeat("d", 10), 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := slices.Clone(base)
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			objs, err := render(t, "v", args...)
			if err != nil {
				t.Fatal(err)
			}
			m, err := decode(objs, c.fullname)
			if err != nil {
				t.Fatal(err)
			}
			if m.Bridge == nil || m.BridgeService == nil || m.BridgeHeadless == nil {
				t.Fatalf("bridge StatefulSet %v, Service %v, headless Service %v", m.Bridge != nil, m.BridgeService != nil, m.BridgeHeadless != nil)
			}
			if (m.BridgePDB != nil) != c.pdb {
				t.Errorf("bridge PDB %v, want %v", m.BridgePDB != nil, c.pdb)
			}
			if r := m.Bridge.Spec.Replicas; r == nil || *r != c.replicas {
				t.Errorf("bridge replicas %v, want %d", r, c.replicas)
			}
			svc, sts, headless := bridgeNames(c.fullname)
			if m.Bridge.Name != sts || m.Bridge.Spec.ServiceName != headless || m.BridgeHeadless.Name != headless || m.BridgeService.Name != svc {
				t.Errorf("bridge names: StatefulSet %q serviceName %q headless %q Service %q; want %q %q %q %q",
					m.Bridge.Name, m.Bridge.Spec.ServiceName, m.BridgeHeadless.Name, m.BridgeService.Name, sts, headless, headless, svc)
			}
			for what, n := range map[string]struct {
				name string
				max  int
			}{
				"StatefulSet":      {m.Bridge.Name, 52},
				"headless Service": {m.BridgeHeadless.Name, 63},
				"Service":          {m.BridgeService.Name, 63},
				"last pod":         {fmt.Sprintf("%s-%d", m.Bridge.Name, max(c.replicas-1, 0)), 63},
			} {
				if len(n.name) > n.max || !dnsLabel.MatchString(n.name) {
					t.Errorf("bridge %s name %q: not a DNS label of at most %d characters", what, n.name, n.max)
				}
			}
			if got := m.Bridge.Spec.Template.Labels["app.kubernetes.io/name"]; got != "shopstream-bridge" {
				t.Errorf("bridge pod label app.kubernetes.io/name = %q", got)
			}
		})
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
