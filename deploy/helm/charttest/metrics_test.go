package charttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// targetLabels are the labels Prometheus and prometheus-operator attach to
// every series scraped through a ServiceMonitor.
var targetLabels = []string{"namespace", "job", "instance", "pod", "service", "container", "endpoint"}

// externalMetrics are the series the alerts use that shopstream does not
// export, with their own labels (target labels come on top):
//   - up: written by Prometheus itself for every scrape target;
//   - kube_pod_status_ready: kube-state-metrics (README, "Deploying on
//     Kubernetes", says the ShopstreamPodNotReady alert needs it).
var externalMetrics = map[string][]string{
	"up":                    nil,
	"kube_pod_status_ready": {"namespace", "pod", "uid", "condition"},
}

// metricSet maps a series name to its label names.
type metricSet map[string]map[string]bool

func (s metricSet) add(name string, lbls ...string) {
	if s[name] == nil {
		s[name] = map[string]bool{}
	}
	for _, l := range lbls {
		s[name][l] = true
	}
}

// addFamilies adds scraped families; a histogram adds its _bucket (with
// le), _sum and _count series, a summary its quantile series.
func (s metricSet) addFamilies(fams map[string]*dto.MetricFamily) {
	for name, f := range fams {
		var lbls []string
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				lbls = append(lbls, lp.GetName())
			}
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			s.add(name+"_bucket", append(lbls, "le")...)
			s.add(name+"_sum", lbls...)
			s.add(name+"_count", lbls...)
		case dto.MetricType_SUMMARY:
			s.add(name, append(lbls, "quantile")...)
			s.add(name+"_sum", lbls...)
			s.add(name+"_count", lbls...)
		default:
			s.add(name, lbls...)
		}
	}
}

// liveRun is what the real binary exported while it ran.
type liveRun struct {
	scraped  metricSet // seen on /metrics
	declared metricSet // registered by the processor and kprom, series or not
	outcomes map[string]bool
}

var (
	liveOnce   sync.Once
	liveResult *liveRun
	liveErr    error
)

// The scrape is shared by the tests that need it.
func live(t *testing.T) *liveRun {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real processor; skipped with -short")
	}
	liveOnce.Do(func() { liveResult, liveErr = runLive(t) })
	if liveErr != nil {
		t.Fatal(liveErr)
	}
	return liveResult
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runLive runs `shopstream run` exactly as the default install's Deployment
// does — its args, its environment, its topology file — against an embedded
// Kafka, an embedded Redis and the sink simulator, with traffic that makes
// every record outcome and some retries happen, and a Redis outage. It
// checks the probes behave as the chart assumes (liveness stays up while
// Redis is down, readiness does not; SIGTERM ends well inside the grace
// period) and returns what /metrics exported.
func runLive(t *testing.T) (*liveRun, error) {
	bin := shopstreamBinary(t)
	m := decodeScenario(t, scenarios[0])
	c := container(t, m)
	raw, _ := topologyOf(t, m)
	ctx := context.Background()

	kafka, err := devstack.StartKafka(ctx, devstack.KafkaOptions{})
	if err != nil {
		return nil, err
	}
	defer kafka.Close()
	mr, err := miniredis.Run()
	if err != nil {
		return nil, err
	}
	defer mr.Close()
	sim := devstack.NewSimulator()
	if _, err := sim.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	defer sim.Close()
	sim.FailNext(devstack.SinkCRM, 3, http.StatusServiceUnavailable, "") // retries

	dir, err := os.MkdirTemp(binDir, "live-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := podEnv(t, m, map[string]string{
		"SHOPSTREAM_REDIS_URL":     "redis://" + mr.Addr() + "/0",
		"SHOPSTREAM_MAGENTO_TOKEN": sim.Token(),
	}, map[string]string{
		"SHOPSTREAM_CONFIG":      cfg,
		"SHOPSTREAM_BROKERS":     strings.Join(kafka.Addrs(), ","),
		"SHOPSTREAM_HTTP_ADDR":   httpAddr,
		"SHOPSTREAM_MAGENTO_URL": sim.URL(),
		"SHOPSTREAM_CRM_URL":     sim.WebhookURL(devstack.SinkCRM),
		"SHOPSTREAM_FRAUD_URL":   sim.WebhookURL(devstack.SinkFraud),
		"SHOPSTREAM_EMAIL_URL":   sim.WebhookURL(devstack.SinkEmail),
	})
	logs := &syncBuffer{}
	cmd := exec.Command(bin, c.Args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()
	fail := func(format string, args ...any) (*liveRun, error) {
		return nil, fmt.Errorf(format+"\nshopstream logs:\n%s", append(args, logs.String())...)
	}

	base := "http://" + httpAddr
	get := func(path string) (int, string) {
		cl := http.Client{Timeout: 5 * time.Second}
		resp, err := cl.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	liveness, readiness := c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path
	waitFor := func(what string, d time.Duration, cond func() bool) error {
		deadline := time.Now().Add(d)
		for !cond() {
			select {
			case err := <-exited:
				stopped = true
				return fmt.Errorf("shopstream exited (%v) while waiting for %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no %s within %s", what, d)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return nil
	}
	scrape := func() (map[string]*dto.MetricFamily, error) {
		code, body := get("/metrics")
		if code != http.StatusOK {
			return nil, fmt.Errorf("/metrics: %d %s", code, body)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		return p.TextToMetricFamilies(strings.NewReader(body))
	}

	if err := waitFor("readiness", 60*time.Second, func() bool { code, _ := get(readiness); return code == http.StatusOK }); err != nil {
		return fail("%v", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addrs()...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	gen := devstack.GenConfig{Seed: 5, SKUs: 15, StockUpdates: 60, Orders: 10, Customers: 6,
		DuplicateRate: 0.2, StaleRate: 0.2, PoisonRate: 0.1}
	if _, err := devstack.Generate(ctx, cl, gen); err != nil {
		return nil, err
	}

	// Every outcome, retries, members and lag show up.
	res := &liveRun{scraped: metricSet{}, declared: metricSet{}, outcomes: map[string]bool{}}
	wantOutcomes := []string{processor.OutcomeApplied, processor.OutcomeSkippedStale, processor.OutcomeSkippedDuplicate,
		processor.OutcomeDeadLettered, processor.OutcomeFiltered}
	var last map[string]*dto.MetricFamily
	err = waitFor("every outcome, retries, lag and members on /metrics", 90*time.Second, func() bool {
		fams, err := scrape()
		if err != nil {
			return false
		}
		last = fams
		for _, m := range fams["shopstream_records_total"].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "outcome" {
					res.outcomes[lp.GetValue()] = true
				}
			}
		}
		for _, o := range wantOutcomes {
			if !res.outcomes[o] {
				return false
			}
		}
		for _, name := range []string{"shopstream_retries_total", "shopstream_consumer_lag", "shopstream_group_members", "shopstream_handler_duration_seconds"} {
			if fams[name] == nil {
				return false
			}
		}
		return true
	})
	if err != nil {
		var names []string
		for n := range last {
			names = append(names, n)
		}
		return fail("%v; outcomes %v; families %v", err, res.outcomes, names)
	}
	res.scraped.addFamilies(last)
	// Redis down: the group pauses, readiness fails, liveness holds (the
	// chart's liveness probe must not restart a pod for a Redis outage).
	mr.Close()
	gen.Seed = 6
	gen.Orders, gen.Customers, gen.SKUs = 3, 3, 3
	gen.StockUpdates = 10
	if _, err := devstack.Generate(ctx, cl, gen); err != nil {
		return nil, err
	}
	err = waitFor("a paused group and a failing readiness while Redis is down", 60*time.Second, func() bool {
		if code, _ := get(readiness); code != http.StatusServiceUnavailable {
			return false
		}
		fams, err := scrape()
		if err != nil {
			return false
		}
		last = fams
		for _, m := range fams["shopstream_paused"].GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				return fams["shopstream_store_failures_total"] != nil
			}
		}
		return false
	})
	if err != nil {
		return fail("%v", err)
	}
	if code, body := get(liveness); code != http.StatusOK {
		return fail("%s = %d %s while Redis is down; liveness must not fail on a Redis outage", liveness, code, body)
	}
	res.scraped.addFamilies(last)
	if err := mr.Restart(); err != nil {
		return nil, err
	}
	err = waitFor("readiness and no paused group after Redis is back", 60*time.Second, func() bool {
		if code, _ := get(readiness); code != http.StatusOK {
			return false
		}
		fams, err := scrape()
		if err != nil {
			return false
		}
		for _, m := range fams["shopstream_paused"].GetMetric() {
			if m.GetGauge().GetValue() != 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fail("%v", err)
	}

	// SIGTERM ends well inside terminationGracePeriodSeconds.
	grace := time.Duration(*m.Deployment.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil, err
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return fail("shopstream exited with %v after SIGTERM", err)
		}
	case <-time.After(grace):
		return fail("shopstream still runs %s after SIGTERM, the pod's terminationGracePeriodSeconds", grace)
	}
	t.Logf("shopstream stopped %s after SIGTERM (grace period %s)", time.Since(start).Round(time.Millisecond), grace)

	if err := declared(kafka.Addrs(), res.declared); err != nil {
		return nil, err
	}
	return res, nil
}

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder struct {
	mu sync.Mutex
	cs []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cs = append(r.cs, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}`)

// declared adds every metric the processor and the binary's kprom wiring
// (cmd/shopstream/service.go: prefix shopstream_kafka, client label)
// register, including counters that have no series until something fails
// (DLQ write, commit, store failures; Kafka connection errors). Histograms
// are not declared-only: the one histogram is scraped.
func declared(brokers []string, into metricSet) error {
	rec := &recorder{}
	p, err := processor.New(processor.Options{
		Brokers:    brokers,
		Registerer: rec,
		Logger:     zerolog.Nop(),
		GroupClientOpts: func(string) []kgo.Opt {
			return []kgo.Opt{kgo.WithHooks(kprom.NewMetrics("shopstream_kafka", kprom.Registerer(rec), kprom.WithClientLabel()))}
		},
	}, processor.GroupConfig{
		Name: "declared", Topic: topics.TopicInventory, Domain: topics.DomainInventory,
		Handler: processor.HandlerFunc(func(context.Context, *topics.Event) error { return nil }),
	})
	if err != nil {
		return fmt.Errorf("processor.New: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("processor.Run: %w", err)
		}
	case <-time.After(30 * time.Second):
		return errors.New("processor.Run with a cancelled context did not return within 30 s")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, c := range rec.cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				return fmt.Errorf("cannot read %s", d)
			}
			var lbls []string
			for _, l := range strings.Split(m[2]+","+m[3], ",") {
				l, _, _ = strings.Cut(l, "=") // constLabels are name="value"
				if l = strings.TrimSpace(l); l != "" {
					lbls = append(lbls, l)
				}
			}
			into.add(m[1], lbls...)
		}
	}
	return nil
}

// Every metric an alert or the dashboard names is exported by the real
// processor (seen on /metrics of the running binary, or registered by it
// for counters that only get series on failures), or is one of the
// documented external metrics; and every label the expressions match on or
// group by exists on the series they read.
func TestExpressionsUseExportedMetrics(t *testing.T) {
	run := live(t)
	exprs := allExprs(t)
	if len(exprs) == 0 {
		t.Fatal("no expressions")
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, vs := range selectors(e.expr) {
			name := metricName(vs)
			used[name] = true
			if _, ok := run.scraped[name]; ok {
				continue
			}
			if _, ok := externalMetrics[name]; ok {
				continue
			}
			if _, ok := run.declared[name]; ok {
				t.Logf("%s: %s has no series in this run (a failure counter); the processor registers it", e.where, name)
				continue
			}
			t.Errorf("%s: metric %q is not exported by shopstream\n%s", e.where, name, e.text)
		}
		for _, err := range checkLabels(e.expr, run) {
			t.Errorf("%s: %v\n%s", e.where, err, e.text)
		}
		// Outcome values exist.
		for _, vs := range selectors(e.expr) {
			for _, m := range vs.LabelMatchers {
				if m.Name != "outcome" {
					continue
				}
				vals := []string{m.Value}
				if m.Type == labels.MatchRegexp {
					vals = strings.Split(m.Value, "|")
				}
				for _, v := range vals {
					if !run.outcomes[v] {
						t.Errorf("%s: outcome %q is not one the processor reports (%v)", e.where, v, slices.Sorted(maps.Keys(run.outcomes)))
					}
				}
			}
		}
	}
	// The contract metrics are all on the dashboard or in an alert.
	for _, name := range []string{"shopstream_records_total", "shopstream_retries_total", "shopstream_handler_duration_seconds_bucket",
		"shopstream_consumer_lag", "shopstream_consumer_lag_seconds", "shopstream_group_members", "shopstream_inflight", "shopstream_paused"} {
		if !used[name] {
			t.Errorf("%s is used by no alert or panel", name)
		}
	}
	// kprom's prefix and client label are the binary's.
	kafkaSeen := false
	for name, lbls := range run.scraped {
		if strings.HasPrefix(name, "shopstream_kafka_") && lbls["client_id"] {
			kafkaSeen = true
		}
	}
	if !kafkaSeen {
		t.Error("no shopstream_kafka_* series with a client_id label on /metrics; the dashboard's Kafka panels assume them")
	}
}

// labelSet is nil for "unknown" (scalars, absent()).
type labelSet map[string]bool

func setOf(ls ...string) labelSet {
	s := labelSet{}
	for _, l := range ls {
		s[l] = true
	}
	return s
}

// checkLabels propagates label sets through e and reports every label used
// in a matcher, a by() or an on() that cannot exist there.
func checkLabels(e parser.Expr, run *liveRun) []error {
	var errs []error
	var out func(n parser.Node) labelSet
	metricLabels := func(name string) labelSet {
		s := setOf(targetLabels...)
		if ext, ok := externalMetrics[name]; ok {
			for _, l := range ext {
				s[l] = true
			}
			return s
		}
		src := run.scraped[name]
		if src == nil {
			src = run.declared[name]
		}
		if src == nil {
			return nil // reported as an unknown metric
		}
		for l := range src {
			s[l] = true
		}
		return s
	}
	need := func(what string, have labelSet, ls []string) {
		if have == nil {
			return
		}
		for _, l := range ls {
			if !have[l] {
				errs = append(errs, fmt.Errorf("%s: label %q does not exist there (have %v)", what, l, slices.Sorted(maps.Keys(have))))
			}
		}
	}
	out = func(n parser.Node) labelSet {
		switch n := n.(type) {
		case *parser.VectorSelector:
			s := metricLabels(metricName(n))
			for _, m := range n.LabelMatchers {
				if m.Name != labels.MetricName {
					need(n.String(), s, []string{m.Name})
				}
			}
			return s
		case *parser.MatrixSelector:
			return out(n.VectorSelector)
		case *parser.SubqueryExpr:
			return out(n.Expr)
		case *parser.ParenExpr:
			return out(n.Expr)
		case *parser.UnaryExpr:
			return out(n.Expr)
		case *parser.StepInvariantExpr:
			return out(n.Expr)
		case *parser.NumberLiteral, *parser.StringLiteral:
			return nil
		case *parser.Call:
			var s labelSet
			for _, a := range n.Args {
				if as := out(a); as != nil && s == nil {
					s = as
				}
			}
			switch n.Func.Name {
			case "absent", "absent_over_time", "vector", "scalar", "time":
				return nil
			case "histogram_quantile":
				if s != nil {
					need("histogram_quantile", s, []string{"le"})
					s = maps.Clone(s)
					delete(s, "le")
				}
			}
			return s
		case *parser.AggregateExpr:
			s := out(n.Expr)
			if n.Param != nil {
				out(n.Param)
			}
			if n.Without {
				if s == nil {
					return nil
				}
				s = maps.Clone(s)
				for _, l := range n.Grouping {
					delete(s, l)
				}
				return s
			}
			need(n.Op.String()+" by", s, n.Grouping)
			return setOf(n.Grouping...)
		case *parser.BinaryExpr:
			l, r := out(n.LHS), out(n.RHS)
			if vm := n.VectorMatching; vm != nil && vm.On {
				need(n.Op.String()+" on (left side)", l, vm.MatchingLabels)
				need(n.Op.String()+" on (right side)", r, vm.MatchingLabels)
			}
			if l == nil {
				return r
			}
			return l
		}
		errs = append(errs, fmt.Errorf("checkLabels: unhandled node %T", n))
		return nil
	}
	out(e)
	return errs
}
