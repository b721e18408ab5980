package charttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// helmInstall is how to get the helm the tests and .ci/run use.
const helmInstall = "go install helm.sh/helm/v3/cmd/helm@v3.22.0"

var (
	chartDir = filepath.Join("..", "shopstream")
	repoRoot = filepath.Join("..", "..", "..")
)

// namespace is the release namespace of every render.
const namespace = "shop"

// scenario is one ci/<name>-values.yaml (or the bare defaults) with what its
// rendering must contain. The expectations are written out here rather than
// derived from the values, so that a template bug cannot agree with itself.
type scenario struct {
	name     string   // ci/<name>-values.yaml; "" renders the chart's defaults alone
	release  string   // release name
	fullname string   // expected resource name
	groups   []string // expected SHOPSTREAM_GROUPS, in start order
	topics   map[string]string
	keda     bool
	minRep   int32
	maxRep   int32 // KEDA's or the HPA's
	hpa      bool
	sasl     bool
	tls      bool
	caSecret string
	grace    int64 // terminationGracePeriodSeconds
	kinds    []string
	redisCA  *mountedFile // the Redis CA bundle's source; nil: none
	redisPW  string       // Secret of SHOPSTREAM_REDIS_PASSWORD; "": not set
	bridge   *bridgeWant  // nil: no bridge
}

// mountedFile is a file mounted from one key of a Secret or ConfigMap.
type mountedFile struct {
	kind string // "secret" or "configMap"
	name string
	key  string
}

// bridgeWant is what a scenario's bridge StatefulSet must be.
type bridgeWant struct {
	replicas int32 // above 1: with a PodDisruptionBudget
	port     int32 // container port
	svcPort  int32
	secret   string   // Secret of the HMAC secrets
	keys     []string // its keys, in order
}

var allGroups = []string{"catalog", "inventory", "order-crm", "order-fraud", "order-email", "customer-crm"}

var defaultTopics = map[string]string{
	"catalog":   "commerce.catalog.v1",
	"inventory": "commerce.inventory.v1",
	"order":     "commerce.order.v1",
	"customer":  "commerce.customer.v1",
}

var baseKinds = []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}

func kinds(extra ...string) []string { return append(append([]string(nil), baseKinds...), extra...) }

var scenarios = []scenario{
	{name: "", release: "shopstream", fullname: "shopstream", groups: allGroups, topics: defaultTopics,
		keda: true, minRep: 1, maxRep: 6, grace: 60, kinds: kinds("ScaledObject")},
	{name: "default", release: "prod", fullname: "prod-shopstream", groups: allGroups, topics: defaultTopics,
		keda: true, minRep: 1, maxRep: 6, grace: 60, kinds: kinds("ScaledObject")},
	{name: "keda-off-hpa", release: "prod", fullname: "prod-shopstream", groups: allGroups, topics: defaultTopics,
		hpa: true, minRep: 2, maxRep: 12, grace: 120, kinds: kinds("HorizontalPodAutoscaler")},
	{name: "sasl", release: "prod", fullname: "prod-shopstream", groups: allGroups, topics: defaultTopics,
		keda: true, minRep: 0, maxRep: 6, sasl: true, tls: true, caSecret: "kafka-ca", grace: 60,
		kinds: kinds("ScaledObject", "TriggerAuthentication")},
	{name: "one-group", release: "fraud", fullname: "shopstream-order-fraud", groups: []string{"order-fraud"},
		topics: map[string]string{"catalog": "commerce.catalog.v1", "inventory": "commerce.inventory.v1", "order": "shop.orders.v2", "customer": "commerce.customer.v1"},
		keda:   true, minRep: 1, maxRep: 2, grace: 60, kinds: kinds("ScaledObject", "PrometheusRule")},
	{name: "monitoring", release: "prod", fullname: "prod-shopstream", groups: allGroups, topics: defaultTopics,
		keda: true, minRep: 1, maxRep: 6, grace: 60, kinds: kinds("ScaledObject", "ServiceMonitor", "PrometheusRule", "ConfigMap")},
	{name: "bridge", release: "prod", fullname: "prod-shopstream", groups: allGroups, topics: defaultTopics,
		keda: true, minRep: 1, maxRep: 6, sasl: true, tls: true, caSecret: "kafka-ca", grace: 60,
		kinds:   kinds("ScaledObject", "TriggerAuthentication", "StatefulSet", "Service", "Service", "PodDisruptionBudget"),
		redisCA: &mountedFile{"configMap", "trust-bundle", "bundle.pem"}, redisPW: "redis-auth",
		bridge: &bridgeWant{replicas: 3, port: 8081, svcPort: 80, secret: "shopstream-bridge-hmac", keys: []string{"current", "previous"}}},
	{name: "redis-tls", release: "prod", fullname: "prod-shopstream", groups: allGroups, topics: defaultTopics,
		keda: true, minRep: 1, maxRep: 6, grace: 60, kinds: kinds("ScaledObject", "StatefulSet", "Service", "Service", "PodDisruptionBudget"),
		redisCA: &mountedFile{"secret", "redis-ca", "ca.crt"}, redisPW: "redis",
		bridge: &bridgeWant{replicas: 2, port: 8080, svcPort: 8080, secret: "shopstream-bridge", keys: []string{"secret"}}},
}

func (s scenario) String() string {
	if s.name == "" {
		return "chart-defaults"
	}
	return s.name
}

// args are helm's arguments for the scenario after `helm template|lint`.
func (s scenario) valuesArgs() []string {
	if s.name == "" {
		return nil
	}
	return []string{"-f", filepath.Join(chartDir, "ci", s.name+"-values.yaml")}
}

// helmBin finds helm: $HELM, PATH, then GOPATH/bin where go install puts it.
func helmBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "helm")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("helm not found: set $HELM or put helm on PATH; install it with\n\t%s", helmInstall)
	return ""
}

func runHelm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// helm must not read a user's or CI's repositories or plugins.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// object is one rendered document.
type object struct {
	APIVersion string
	Kind       string
	Name       string
	Source     string // the template it came from
	JSON       []byte
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.APIVersion, o.Kind, o.Name, o.Source)
}

var renderCache sync.Map // key → renderResult

type renderResult struct {
	objs []object
	err  error
}

// render runs helm template with extra arguments (-f, --set) and splits the
// output into documents.
func render(t testing.TB, release string, extra ...string) ([]object, error) {
	t.Helper()
	key := release + "\x00" + strings.Join(extra, "\x00")
	if r, ok := renderCache.Load(key); ok {
		return r.(renderResult).objs, r.(renderResult).err
	}
	args := append([]string{"template", release, chartDir, "--namespace", namespace}, extra...)
	out, stderr, err := runHelm(t, args...)
	var objs []object
	if err != nil {
		err = fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr)
	} else {
		objs, err = splitDocuments(out)
	}
	renderCache.Store(key, renderResult{objs, err})
	return objs, err
}

func renderScenario(t testing.TB, s scenario) []object {
	t.Helper()
	objs, err := render(t, s.release, s.valuesArgs()...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func splitDocuments(out string) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	var objs []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		source := ""
		if _, after, ok := strings.Cut(string(doc), "# Source: "); ok {
			source, _, _ = strings.Cut(after, "\n")
		}
		// YAMLToJSONStrict rejects duplicate keys.
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // only comments
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		objs = append(objs, object{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Source: source, JSON: js})
	}
}

// TestHelmLint runs helm lint --strict on the defaults and every scenario.
func TestHelmLint(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir, "--namespace", namespace}, s.valuesArgs()...)
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
			}
		})
	}
}

// Every ci/*-values.yaml has a scenario here, so a new file cannot go untested.
func TestEveryCIValuesFileHasAScenario(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no ci/*-values.yaml")
	}
	known := map[string]bool{}
	for _, s := range scenarios {
		known[s.name] = true
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), "-values.yaml")
		if !known[name] {
			t.Errorf("%s has no scenario in helm_test.go", f)
		}
	}
}

// helm template renders every scenario, and the set of kinds is the expected one.
func TestTemplateRendersExpectedObjects(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			objs := renderScenario(t, s)
			var got []string
			for _, o := range objs {
				got = append(got, o.Kind)
			}
			if g, w := sortedCopy(got), sortedCopy(s.kinds); strings.Join(g, ",") != strings.Join(w, ",") {
				t.Errorf("kinds = %v, want %v", g, w)
			}
		})
	}
}

// Misconfigurations fail at helm template with a message naming the value.
func TestTemplateRejectsBadValues(t *testing.T) {
	cases := []struct {
		set  []string
		want string
	}{
		{[]string{"groups.ordr-crm.enabled=true"}, "groups.ordr-crm: unknown group"},
		{[]string{"groups.catalog.enabled=false", "groups.inventory.enabled=false", "groups.order-crm.enabled=false",
			"groups.order-fraud.enabled=false", "groups.order-email.enabled=false", "groups.customer-crm.enabled=false"}, "no group is enabled"},
		{[]string{"keda.maxReplicaCount=7"}, "keda.maxReplicaCount: 7 is above topics.partitions (6)"},
		{[]string{"keda.enabled=false", "autoscaling.enabled=true", "autoscaling.maxReplicas=9"}, "autoscaling.maxReplicas: 9 is above"},
		{[]string{"keda.enabled=false", "replicaCount=7"}, "replicaCount: 7 is above topics.partitions (6)"},
		{[]string{"keda.minReplicaCount=8"}, "keda.minReplicaCount: 8 is above the most replicas (6"},
		{[]string{"keda.minReplicaCount=4", "keda.maxReplicaCount=3"}, "keda.minReplicaCount: 4 is above the most replicas (3"},
		{[]string{"keda.enabled=false", "autoscaling.enabled=true", "autoscaling.minReplicas=7"}, "autoscaling.minReplicas: 7 is above the most replicas (6"},
		{[]string{"topology.drainTimeout=30"}, `topology.drainTimeout: "30" is not a Go duration`},
		{[]string{"groups.catalog.settings.retry.maxBackof=1s"}, "groups.catalog.settings.retry.maxBackof: unknown key"},
		{[]string{"groups.catalog.settings.concurency=1"}, "groups.catalog.settings.concurency: unknown key"},
		{[]string{"kafka.sasl.enabled=true", "kafka.sasl.mechanism=GSSAPI"}, `kafka.sasl.mechanism: "GSSAPI" is not PLAIN`},
		{[]string{"kafka.brokers=null"}, "kafka.brokers: empty"},
		{[]string{"webhooks.fraudUrl="}, "webhooks.fraudUrl: the order-fraud group needs it"},
		{[]string{"topics.partitions=0"}, "topics.partitions: must be at least 1"},
		{[]string{"groups.order-crm.settings.coalesce=true"}, "groups.order-crm.settings.coalesce: only the catalog and inventory groups"},
		{[]string{"bridge.enabled=true"}, "bridge.hmac.existingSecret: the bridge needs the Secret"},
		{[]string{"bridge.enabled=true", "bridge.hmac.existingSecret=s", "bridge.hmac.keys=null"}, "bridge.hmac.keys: empty"},
		{[]string{"bridge.enabled=true", "bridge.hmac.existingSecret=s", "bridge.replicaCount=-1"}, `bridge.replicaCount: "-1" is not a whole number`},
		{[]string{"bridge.enabled=true", "bridge.hmac.existingSecret=s", "bridge.replicaCount=1.5"}, `bridge.replicaCount: "1.5" is not a whole number`},
		{[]string{"bridge.enabled=true", "bridge.hmac.existingSecret=s", "bridge.replicaCount=two"}, `bridge.replicaCount: "two" is not a whole number`},
		// One transactional id for every replica: each would fence the others.
		{[]string{"bridge.enabled=true", "bridge.hmac.existingSecret=s",
			"bridge.extraEnv[0].name=SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID", "bridge.extraEnv[0].value=bridge"},
			"bridge.extraEnv: SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID would give all 2 replicas one Kafka transactional id"},
		{[]string{"redis.tls.caSecret.name=a", "redis.tls.caConfigMap.name=b"}, "redis.tls: set caSecret.name or caConfigMap.name, not both"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.set, ","), func(t *testing.T) {
			var args []string
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			_, err := render(t, "bad", args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func objectsOf(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// The values example in README.md ("Deploying on Kubernetes") renders,
// decodes strictly and is accepted by the binary's config loader.
func TestReadmeValuesExample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Deploying on Kubernetes\n")
	if !ok {
		t.Fatal(`README.md has no "## Deploying on Kubernetes" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the section has no yaml values example")
	}
	block, _, _ = strings.Cut(block, "```")
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := render(t, "shopstream", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decode(objs, "shopstream")
	if err != nil {
		t.Fatal(err)
	}
	if m.ScaledObject == nil || m.PrometheusRule == nil || m.ServiceMonitor == nil || m.Dashboard == nil {
		t.Error("the README example should show KEDA, the ServiceMonitor, the alerts and the dashboard")
	}
	if g := *m.Deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; g != 75 {
		t.Errorf("terminationGracePeriodSeconds = %d; the README says 75", g)
	}
	if max := *m.ScaledObject.Spec.MaxReplicaCount; max != 12 {
		t.Errorf("maxReplicaCount = %d; the README says the partitions (12)", max)
	}
	if m.Bridge == nil {
		t.Fatal("the README example should show the bridge")
	}
	binaryAccepts(t, m)
	bridgeAccepts(t, m)
}
