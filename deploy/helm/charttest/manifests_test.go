package charttest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
)

// manifests are one rendering decoded into the API types.
type manifests struct {
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	Bridge         *appsv1.StatefulSet // "<fullname>-bridge", with bridge.enabled
	BridgeService  *corev1.Service     // the client Service, "<fullname>-bridge"
	BridgeHeadless *corev1.Service     // the StatefulSet's serviceName, "<fullname>-bridge-headless"
	BridgePDB      *policyv1.PodDisruptionBudget
	ServiceAccount *corev1.ServiceAccount
	Config         *corev1.ConfigMap // the topology
	Dashboard      *corev1.ConfigMap
	PDB            *policyv1.PodDisruptionBudget // the consumer's
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	ScaledObject   *kedav1alpha1.ScaledObject
	TriggerAuth    *kedav1alpha1.TriggerAuthentication
	ServiceMonitor *monitoringv1.ServiceMonitor
	PrometheusRule *monitoringv1.PrometheusRule
}

// strictDecode decodes like the API server's strict field validation:
// unknown fields, duplicate fields and fields that match only
// case-insensitively are errors.
func strictDecode(o object, into any) error {
	strict, err := sigsjson.UnmarshalStrict(o.JSON, into)
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%s: %w", o, errors.Join(strict...))
	}
	return nil
}

// bridgeNames are the names of the bridge's objects for a release's full
// name: the client Service and the PodDisruptionBudget "<fullname>-bridge"
// (the full name cut to 56 characters), the StatefulSet "<fullname>-bridge"
// with the full name cut to 45 — a StatefulSet name longer than 52
// characters makes its pods' controller-revision-hash label ("<name>-<hash
// of up to 10 characters>") longer than a label value may be, and the pods
// are never created — and its headless Service "<statefulset>-headless".
func bridgeNames(fullname string) (svc, sts, headless string) {
	cut := func(n int) string {
		s := fullname
		if len(s) > n {
			s = s[:n]
		}
		return strings.TrimSuffix(s, "-") + "-bridge"
	}
	svc, sts = cut(56), cut(45)
	return svc, sts, sts + "-headless"
}

// decode decodes every object by apiVersion and kind; an unexpected kind,
// apiVersion or name, or a second object where one is expected, is an
// error.
func decode(objs []object, fullname string) (*manifests, error) {
	m := &manifests{}
	bridgeSvc, _, bridgeHeadless := bridgeNames(fullname)
	var errs []error
	one := func(o object, dst any, set func()) {
		if err := strictDecode(o, dst); err != nil {
			errs = append(errs, err)
			return
		}
		set()
	}
	for _, o := range objs {
		gvk := o.APIVersion + " " + o.Kind
		dup := func(already bool) bool {
			if already {
				errs = append(errs, fmt.Errorf("%s: a second %s", o, o.Kind))
			}
			return already
		}
		switch gvk {
		case "apps/v1 Deployment":
			// The consumer only: the bridge is a StatefulSet.
			var v appsv1.Deployment
			if !dup(m.Deployment != nil) {
				one(o, &v, func() { m.Deployment = &v })
			}
		case "apps/v1 StatefulSet":
			var v appsv1.StatefulSet
			if !dup(m.Bridge != nil) {
				one(o, &v, func() { m.Bridge = &v })
			}
		case "v1 Service":
			var v corev1.Service
			switch o.Name {
			case fullname:
				if !dup(m.Service != nil) {
					one(o, &v, func() { m.Service = &v })
				}
			case bridgeSvc:
				if !dup(m.BridgeService != nil) {
					one(o, &v, func() { m.BridgeService = &v })
				}
			case bridgeHeadless:
				if !dup(m.BridgeHeadless != nil) {
					one(o, &v, func() { m.BridgeHeadless = &v })
				}
			default:
				errs = append(errs, fmt.Errorf("%s: unexpected Service name", o))
			}
		case "v1 ServiceAccount":
			var v corev1.ServiceAccount
			if !dup(m.ServiceAccount != nil) {
				one(o, &v, func() { m.ServiceAccount = &v })
			}
		case "v1 ConfigMap":
			var v corev1.ConfigMap
			if o.Name == fullname+"-dashboard" {
				if !dup(m.Dashboard != nil) {
					one(o, &v, func() { m.Dashboard = &v })
				}
			} else if !dup(m.Config != nil) {
				one(o, &v, func() { m.Config = &v })
			}
		case "policy/v1 PodDisruptionBudget":
			var v policyv1.PodDisruptionBudget
			switch o.Name {
			case fullname:
				if !dup(m.PDB != nil) {
					one(o, &v, func() { m.PDB = &v })
				}
			case bridgeSvc:
				if !dup(m.BridgePDB != nil) {
					one(o, &v, func() { m.BridgePDB = &v })
				}
			default:
				errs = append(errs, fmt.Errorf("%s: unexpected PodDisruptionBudget name", o))
			}
		case "autoscaling/v2 HorizontalPodAutoscaler":
			var v autoscalingv2.HorizontalPodAutoscaler
			if !dup(m.HPA != nil) {
				one(o, &v, func() { m.HPA = &v })
			}
		case "keda.sh/v1alpha1 ScaledObject":
			var v kedav1alpha1.ScaledObject
			if !dup(m.ScaledObject != nil) {
				one(o, &v, func() { m.ScaledObject = &v })
			}
		case "keda.sh/v1alpha1 TriggerAuthentication":
			var v kedav1alpha1.TriggerAuthentication
			if !dup(m.TriggerAuth != nil) {
				one(o, &v, func() { m.TriggerAuth = &v })
			}
		case "monitoring.coreos.com/v1 ServiceMonitor":
			var v monitoringv1.ServiceMonitor
			if !dup(m.ServiceMonitor != nil) {
				one(o, &v, func() { m.ServiceMonitor = &v })
			}
		case "monitoring.coreos.com/v1 PrometheusRule":
			var v monitoringv1.PrometheusRule
			if !dup(m.PrometheusRule != nil) {
				one(o, &v, func() { m.PrometheusRule = &v })
			}
		default:
			// Secrets in particular: the chart only references them.
			errs = append(errs, fmt.Errorf("%s: unexpected kind; teach charttest to decode it", o))
		}
	}
	if m.Deployment == nil || m.Config == nil {
		errs = append(errs, errors.New("no Deployment or topology ConfigMap rendered"))
	}
	return m, errors.Join(errs...)
}

func decodeScenario(t testing.TB, s scenario) *manifests {
	t.Helper()
	m, err := decode(renderScenario(t, s), s.fullname)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Every rendered document decodes strictly into its API type and carries
// the chart's standard labels, name and namespace.
func TestManifestsDecodeStrictly(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			objs := renderScenario(t, s)
			if _, err := decode(objs, s.fullname); err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				var meta struct {
					Metadata struct {
						Name      string            `json:"name"`
						Namespace string            `json:"namespace"`
						Labels    map[string]string `json:"labels"`
					} `json:"metadata"`
				}
				if err := strictDecodeLoose(o, &meta); err != nil {
					t.Fatal(err)
				}
				md := meta.Metadata
				name, component := "shopstream", ""
				switch md.Name {
				case s.fullname, s.fullname + "-dashboard":
				case s.fullname + "-bridge", s.fullname + "-bridge-headless":
					name, component = "shopstream-bridge", "bridge"
				default:
					t.Errorf("%s: name %q, want %q", o, md.Name, s.fullname)
				}
				if got := md.Labels["app.kubernetes.io/component"]; got != component {
					t.Errorf("%s: label app.kubernetes.io/component = %q, want %q", o, got, component)
				}
				if len(md.Name) > 63 {
					t.Errorf("%s: name longer than 63 characters", o)
				}
				if md.Namespace != namespace {
					t.Errorf("%s: namespace %q, want %q", o, md.Namespace, namespace)
				}
				for k, want := range map[string]string{
					"app.kubernetes.io/name":       name,
					"app.kubernetes.io/instance":   s.release,
					"app.kubernetes.io/version":    "0.1.0",
					"app.kubernetes.io/managed-by": "Helm",
					"app.kubernetes.io/part-of":    "shopstream",
					"helm.sh/chart":                "shopstream-0.3.0",
				} {
					if got := md.Labels[k]; got != want {
						t.Errorf("%s: label %s = %q, want %q", o, k, got, want)
					}
				}
			}
		})
	}
}

// strictDecodeLoose decodes a part of an object (unknown fields allowed).
func strictDecodeLoose(o object, into any) error {
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(o.JSON, into); err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	return nil
}

func selectorLabels(s scenario) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "shopstream", "app.kubernetes.io/instance": s.release}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func subset(sub, super map[string]string) bool {
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

// envNames are every variable the chart may set on the consumer, with
// whether its value must come from a Secret.
var envNames = map[string]bool{
	"SHOPSTREAM_CONFIG":               false,
	"SHOPSTREAM_BROKERS":              false,
	"SHOPSTREAM_GROUPS":               false,
	"SHOPSTREAM_HTTP_ADDR":            false,
	"SHOPSTREAM_LOG_LEVEL":            false,
	"SHOPSTREAM_MAGENTO_URL":          false,
	"SHOPSTREAM_CRM_URL":              false,
	"SHOPSTREAM_FRAUD_URL":            false,
	"SHOPSTREAM_EMAIL_URL":            false,
	"SHOPSTREAM_REDIS_URL":            true,
	"SHOPSTREAM_REDIS_PASSWORD":       true,
	"SHOPSTREAM_REDIS_TLS_CA_FILE":    false,
	"SHOPSTREAM_MAGENTO_TOKEN":        true,
	"SHOPSTREAM_KAFKA_TLS":            false,
	"SHOPSTREAM_KAFKA_TLS_CA_FILE":    false,
	"SHOPSTREAM_KAFKA_SASL_MECHANISM": false,
	"SHOPSTREAM_KAFKA_SASL_USERNAME":  true,
	"SHOPSTREAM_KAFKA_SASL_PASSWORD":  true,
}

// sinkEnv is the sink setting each group needs.
var sinkEnv = map[string][]string{
	"catalog":      {"SHOPSTREAM_MAGENTO_URL", "SHOPSTREAM_MAGENTO_TOKEN"},
	"inventory":    {"SHOPSTREAM_MAGENTO_URL", "SHOPSTREAM_MAGENTO_TOKEN"},
	"order-crm":    {"SHOPSTREAM_CRM_URL"},
	"customer-crm": {"SHOPSTREAM_CRM_URL"},
	"order-fraud":  {"SHOPSTREAM_FRAUD_URL"},
	"order-email":  {"SHOPSTREAM_EMAIL_URL"},
}

func container(t testing.TB, m *manifests) corev1.Container {
	t.Helper()
	cs := m.Deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "shopstream" {
		t.Fatalf("containers = %d, want one named shopstream", len(cs))
	}
	return cs[0]
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

// topologyOf returns the rendered topology file and its parsed form.
func topologyOf(t testing.TB, m *manifests) (string, map[string]any) {
	t.Helper()
	raw, ok := m.Config.Data["topology.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no topology.yaml; keys %v", m.Config.Name, m.Config.Data)
	}
	var top map[string]any
	if err := yaml.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatalf("topology.yaml: %v", err)
	}
	return raw, top
}

func TestDeployment(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			d := m.Deployment
			if autoscaled := s.keda || s.hpa; autoscaled != (d.Spec.Replicas == nil) {
				t.Errorf("spec.replicas = %v with KEDA %v, HPA %v: set it only when nothing autoscales (an upgrade would reset the replicas)", d.Spec.Replicas, s.keda, s.hpa)
			}
			if d.Spec.Selector == nil || !equalMaps(d.Spec.Selector.MatchLabels, selectorLabels(s)) {
				t.Errorf("selector = %v, want %v", d.Spec.Selector, selectorLabels(s))
			}
			pod := d.Spec.Template
			if !subset(selectorLabels(s), pod.Labels) {
				t.Errorf("pod labels %v lack the selector labels", pod.Labels)
			}
			ps := pod.Spec
			if ps.ServiceAccountName != s.fullname || m.ServiceAccount == nil || m.ServiceAccount.Name != s.fullname {
				t.Errorf("serviceAccountName = %q, want the chart's ServiceAccount %q", ps.ServiceAccountName, s.fullname)
			}
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Error("the pod mounts a service account token; shopstream never calls the API")
			}
			psc := ps.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext = %+v, want non-root with a numeric uid and RuntimeDefault seccomp", psc)
			}

			// The grace period covers the drain deadline of the topology.
			_, top := topologyOf(t, m)
			drain, err := time.ParseDuration(fmt.Sprint(top["drain_timeout"]))
			if err != nil {
				t.Fatalf("drain_timeout: %v", err)
			}
			if drain == 0 {
				drain = 30 * time.Second // the binary's default
			}
			if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds != s.grace {
				t.Errorf("terminationGracePeriodSeconds = %v, want %d", ps.TerminationGracePeriodSeconds, s.grace)
			} else if g := *ps.TerminationGracePeriodSeconds; float64(g) < math.Ceil(drain.Seconds())+30 {
				t.Errorf("terminationGracePeriodSeconds %d leaves less than 30 s after drain_timeout %s", g, drain)
			}

			c := container(t, m)
			if len(c.Command) != 0 || !slices.Equal(c.Args, []string{"run"}) {
				t.Errorf("command %v args %v, want the image's entrypoint with args [run]", c.Command, c.Args)
			}
			if !strings.HasPrefix(c.Image, "shopstream:") || strings.HasSuffix(c.Image, ":") {
				t.Errorf("image = %q", c.Image)
			}
			if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 9090 {
				t.Errorf("ports = %+v, want http 9090", c.Ports)
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
					t.Errorf("%s probe = %+v, want GET %s on port http", p.name, p.probe, p.path)
				}
			}
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
				(sc.Privileged != nil && *sc.Privileged) {
				t.Errorf("container securityContext = %+v", sc)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources = %+v, want cpu and memory requests and a memory limit", c.Resources)
			}

			// Environment: known names, secrets only from Secrets.
			env := envMap(c)
			if len(env) != len(c.Env) {
				t.Errorf("duplicate environment variables: %v", c.Env)
			}
			for name, e := range env {
				secret, known := envNames[name]
				switch {
				case !known:
					t.Errorf("env %s: not a setting the chart defines", name)
				case secret && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
					e.ValueFrom.SecretKeyRef.Name == "" || e.ValueFrom.SecretKeyRef.Key == ""):
					t.Errorf("env %s must come from a secretKeyRef, got %+v", name, e)
				case !secret && e.ValueFrom != nil:
					t.Errorf("env %s: unexpected valueFrom", name)
				}
			}
			if got := env["SHOPSTREAM_GROUPS"].Value; got != strings.Join(s.groups, ",") {
				t.Errorf("SHOPSTREAM_GROUPS = %q, want %q", got, strings.Join(s.groups, ","))
			}
			if got := env["SHOPSTREAM_HTTP_ADDR"].Value; got != ":9090" {
				t.Errorf("SHOPSTREAM_HTTP_ADDR = %q, want :9090 (the container port and the probes)", got)
			}
			if _, ok := env["SHOPSTREAM_REDIS_URL"]; !ok {
				t.Error("no SHOPSTREAM_REDIS_URL: every group needs Redis")
			}
			needed := map[string]bool{}
			for _, g := range s.groups {
				for _, e := range sinkEnv[g] {
					needed[e] = true
				}
			}
			for _, names := range sinkEnv {
				for _, e := range names {
					if _, ok := env[e]; ok != needed[e] {
						t.Errorf("env %s present = %v, want %v for groups %v", e, ok, needed[e], s.groups)
					}
				}
			}
			for name, want := range map[string]bool{
				"SHOPSTREAM_KAFKA_SASL_MECHANISM": s.sasl, "SHOPSTREAM_KAFKA_SASL_USERNAME": s.sasl, "SHOPSTREAM_KAFKA_SASL_PASSWORD": s.sasl,
				"SHOPSTREAM_KAFKA_TLS": s.tls, "SHOPSTREAM_KAFKA_TLS_CA_FILE": s.caSecret != "",
			} {
				if _, ok := env[name]; ok != want {
					t.Errorf("env %s present = %v, want %v", name, ok, want)
				}
			}
			if s.tls && env["SHOPSTREAM_KAFKA_TLS"].Value != "true" {
				t.Errorf("SHOPSTREAM_KAFKA_TLS = %q, want true", env["SHOPSTREAM_KAFKA_TLS"].Value)
			}
			if pw, ok := env["SHOPSTREAM_REDIS_PASSWORD"]; ok != (s.redisPW != "") ||
				ok && (pw.ValueFrom.SecretKeyRef.Name != s.redisPW) {
				t.Errorf("SHOPSTREAM_REDIS_PASSWORD = %+v, want it from Secret %q", pw, s.redisPW)
			}
			if _, ok := env["SHOPSTREAM_REDIS_TLS_CA_FILE"]; ok != (s.redisCA != nil) {
				t.Errorf("env SHOPSTREAM_REDIS_TLS_CA_FILE present = %v, want %v", ok, s.redisCA != nil)
			}

			// SHOPSTREAM_CONFIG points into the mounted topology ConfigMap;
			// the CA file into the mounted CA Secret.
			mounts := map[string]corev1.VolumeMount{}
			for _, vm := range c.VolumeMounts {
				mounts[vm.Name] = vm
			}
			vols := map[string]corev1.Volume{}
			for _, v := range ps.Volumes {
				vols[v.Name] = v
			}
			cfgPath := env["SHOPSTREAM_CONFIG"].Value
			found := false
			for name, vm := range mounts {
				v := vols[name]
				if v.ConfigMap != nil && v.ConfigMap.Name == m.Config.Name && vm.SubPath == "" && cfgPath == path.Join(vm.MountPath, "topology.yaml") {
					found = true
				}
			}
			if !found {
				t.Errorf("SHOPSTREAM_CONFIG %q is not topology.yaml of a mount of ConfigMap %s", cfgPath, m.Config.Name)
			}
			if s.caSecret != "" {
				checkMountedFile(t, c, ps, "SHOPSTREAM_KAFKA_TLS_CA_FILE", mountedFile{"secret", s.caSecret, ""})
			}
			if s.redisCA != nil {
				checkMountedFile(t, c, ps, "SHOPSTREAM_REDIS_TLS_CA_FILE", *s.redisCA)
			}
			// Every mount has a volume, and the read-only root has a writable /tmp.
			for name := range mounts {
				if _, ok := vols[name]; !ok {
					t.Errorf("volumeMount %s has no volume", name)
				}
			}
			if v := vols["tmp"]; v.EmptyDir == nil || mounts["tmp"].MountPath != "/tmp" {
				t.Error("no emptyDir on /tmp")
			}

			// A changed topology rolls the pods.
			raw, _ := topologyOf(t, m)
			sum := sha256.Sum256([]byte(strings.TrimSuffix(raw, "\n")))
			if got := pod.Annotations["checksum/config"]; got != hex.EncodeToString(sum[:]) {
				t.Errorf("checksum/config = %q, want the sha256 of the topology %s", got, hex.EncodeToString(sum[:]))
			}
		})
	}
}

// checkMountedFile checks that the file the container's variable env names
// is key want.key (any key when empty) of the Secret or ConfigMap
// want.name, mounted read-only.
func checkMountedFile(t *testing.T, c corev1.Container, ps corev1.PodSpec, env string, want mountedFile) {
	t.Helper()
	file := envMap(c)[env].Value
	for _, vm := range c.VolumeMounts {
		for _, v := range ps.Volumes {
			if v.Name != vm.Name {
				continue
			}
			var name string
			var items []corev1.KeyToPath
			switch {
			case want.kind == "secret" && v.Secret != nil:
				name, items = v.Secret.SecretName, v.Secret.Items
			case want.kind == "configMap" && v.ConfigMap != nil:
				name, items = v.ConfigMap.Name, v.ConfigMap.Items
			default:
				continue
			}
			if name == want.name && len(items) == 1 && (want.key == "" || items[0].Key == want.key) &&
				vm.ReadOnly && vm.SubPath == "" && file == path.Join(vm.MountPath, items[0].Path) {
				return
			}
		}
	}
	t.Errorf("%s = %q is not key %q of %s %s mounted read-only; mounts %+v, volumes %+v", env, file, want.key, want.kind, want.name, c.VolumeMounts, ps.Volumes)
}

// The topology names the expected groups and topics, in the binary's keys.
func TestTopologyContent(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			_, top := topologyOf(t, m)
			gotTopics := map[string]string{}
			for k, v := range top["topics"].(map[string]any) {
				gotTopics[k] = fmt.Sprint(v)
			}
			if !equalMaps(gotTopics, s.topics) {
				t.Errorf("topics = %v, want %v", gotTopics, s.topics)
			}
			var gotGroups []string
			for g := range top["groups"].(map[string]any) {
				gotGroups = append(gotGroups, g)
			}
			if !slices.Equal(sortedCopy(gotGroups), sortedCopy(s.groups)) {
				t.Errorf("topology groups = %v, want %v (only enabled groups are configured)", gotGroups, s.groups)
			}
		})
	}
}

func TestServiceAndDisruptionBudget(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			svc := m.Service
			if !equalMaps(svc.Spec.Selector, selectorLabels(s)) {
				t.Errorf("Service selector = %v, want %v", svc.Spec.Selector, selectorLabels(s))
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http-metrics" || svc.Spec.Ports[0].Port != 9090 ||
				svc.Spec.Ports[0].TargetPort.String() != "http" {
				t.Errorf("Service ports = %+v, want http-metrics 9090 → http", svc.Spec.Ports)
			}
			if m.PDB == nil {
				t.Fatal("no PodDisruptionBudget")
			}
			if !equalMaps(m.PDB.Spec.Selector.MatchLabels, selectorLabels(s)) {
				t.Errorf("PDB selector = %v", m.PDB.Spec.Selector)
			}
			if (m.PDB.Spec.MinAvailable == nil) == (m.PDB.Spec.MaxUnavailable == nil) {
				t.Errorf("PDB sets both or neither of minAvailable and maxUnavailable: %+v", m.PDB.Spec)
			}
			if m.PDB.Spec.MinAvailable != nil && m.PDB.Spec.MinAvailable.IntValue() >= int(s.minRep) && s.minRep > 0 {
				t.Errorf("PDB minAvailable %s blocks every node drain at %d replicas", m.PDB.Spec.MinAvailable, s.minRep)
			}
		})
	}
}

func TestServiceMonitor(t *testing.T) {
	for _, s := range scenarios {
		m := decodeScenario(t, s)
		sm := m.ServiceMonitor
		if sm == nil {
			continue
		}
		t.Run(s.String(), func(t *testing.T) {
			if !subset(sm.Spec.Selector.MatchLabels, m.Service.Labels) || len(sm.Spec.Selector.MatchLabels) == 0 {
				t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sm.Spec.Selector.MatchLabels, m.Service.Labels)
			}
			if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
				t.Errorf("namespaceSelector = %+v", sm.Spec.NamespaceSelector)
			}
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("endpoints = %d", len(sm.Spec.Endpoints))
			}
			ep := sm.Spec.Endpoints[0]
			if ep.Port != m.Service.Spec.Ports[0].Name || ep.Path != "/metrics" {
				t.Errorf("endpoint = %+v, want port %s path /metrics", ep, m.Service.Spec.Ports[0].Name)
			}
			for _, d := range []monitoringv1.Duration{ep.Interval, ep.ScrapeTimeout} {
				if _, err := time.ParseDuration(string(d)); d != "" && err != nil {
					t.Errorf("duration %q: %v", d, err)
				}
			}
		})
	}
}
