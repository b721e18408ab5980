package chaos

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/internal/kafkatest"
	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/topics"
)

// stack is one scenario's world: Kafka topics (prefixed on a shared real
// broker), a redis-server, the simulator, the generated stream and the
// shopstream processes.
type stack struct {
	t       *testing.T
	b       *backend
	prefix  string
	brokers []string
	cl      *kgo.Client
	adm     *kadm.Client
	redis   *redistest.Server
	sim     *devstack.Simulator
	groups  []devstack.GroupSpec
	config  string // YAML topology file for the processes
	// redisURL overrides the Redis the processes use (a proxy); empty
	// means the redis-server itself.
	redisURL string
	dir      string

	m      *devstack.Manifest // rewritten to this stack's topics, partitions and offsets
	source []devstack.Produced

	mu    sync.Mutex
	procs []*proc
	seq   int
}

var prefixSeq atomic.Int64

// logLevel is the processes' --log-level: warn, or SHOPSTREAM_CHAOS_LOG_LEVEL
// (info shows assignments, revocations and commits, for a post-mortem with
// SHOPSTREAM_CHAOS_LOGS).
var logLevel = cmp.Or(os.Getenv("SHOPSTREAM_CHAOS_LOG_LEVEL"), "warn")

// newStack starts everything but the processes. yaml is appended to the
// topology file (the topics section is written here).
func newStack(t *testing.T, b *backend, yaml string) *stack {
	t.Helper()
	s := &stack{t: t, b: b, dir: t.TempDir()}
	if keep := os.Getenv("SHOPSTREAM_CHAOS_LOGS"); keep != "" {
		// Keep the process logs of this run for a post-mortem.
		s.dir = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if b.Real() {
		s.brokers = b.Shared
		s.prefix = fmt.Sprintf("chaos%d-%d-", time.Now().UnixNano()%1e9, prefixSeq.Add(1))
	} else {
		k, err := devstack.StartKafka(context.Background(), devstack.KafkaOptions{Topics: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
		s.brokers = k.Addrs()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16<<20), kgo.MaxBufferedRecords(100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s.cl, s.adm = cl, kadm.NewClient(cl)

	var names []string
	for _, base := range devstack.DefaultTopics() {
		names = append(names, s.prefix+base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafkatest.CreateTopics(ctx, s.adm, devstack.DefaultPartitions, names...); err != nil {
		t.Fatal(err)
	}

	for _, g := range devstack.DefaultGroups() {
		g.Topic = s.prefix + g.Topic
		s.groups = append(s.groups, g)
	}
	s.redis = redistest.Start(t)
	s.sim = devstack.NewSimulator()
	if _, err := s.sim.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.sim.Close)

	var y strings.Builder
	y.WriteString("topics:\n")
	for _, d := range []string{"catalog", "inventory", "order", "customer"} {
		fmt.Fprintf(&y, "  %s: %scommerce.%s.v1\n", d, s.prefix, d)
	}
	y.WriteString(yaml)
	s.config = filepath.Join(s.dir, "topology.yaml")
	if err := os.WriteFile(s.config, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stopAll)
	return s
}

// generate makes the stream on a private kfake (devstack.Generate writes
// the default topic names) and keeps it for feed; nothing reaches this
// stack's Kafka yet.
func (s *stack) generate(cfg devstack.GenConfig) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k, err := devstack.StartKafka(ctx, devstack.KafkaOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	defer k.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	m, err := devstack.Generate(ctx, cl, cfg)
	if err != nil {
		s.t.Fatalf("generate: %v", err)
	}
	s.source = m.Records
	s.m = &devstack.Manifest{Config: m.Config}
}

// feed produces the generated stream to this stack's topics, same
// partitions, in order, in batches of batch records with pause between
// them, and rewrites the manifest to the offsets the records got.
func (s *stack) feed(ctx context.Context, batch int, pause time.Duration) error {
	return s.feedPart(ctx, s.source, batch, pause)
}

// feedPart is feed for part of the generated stream (a slice of s.source,
// fed in order after the parts before it).
func (s *stack) feedPart(ctx context.Context, source []devstack.Produced, batch int, pause time.Duration) error {
	if batch <= 0 {
		batch = len(source)
	}
	for i := 0; i < len(source); i += batch {
		chunk := source[i:min(i+batch, len(source))]
		recs := make([]*kgo.Record, len(chunk))
		for j, p := range chunk {
			recs[j] = &kgo.Record{Topic: s.prefix + p.Topic, Partition: p.Partition, Key: []byte(p.Key), Value: p.Value}
		}
		if err := s.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("feed: %w", err)
		}
		s.mu.Lock()
		for j, p := range chunk {
			p.Topic, p.Partition, p.Offset = recs[j].Topic, recs[j].Partition, recs[j].Offset
			s.m.Records = append(s.m.Records, p)
		}
		s.mu.Unlock()
		if pause > 0 && i+batch < len(source) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
		}
	}
	return nil
}

// proc is one `shopstream run` process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	// http is the address of its /metrics, /healthz and /readyz.
	http string
	done chan struct{}
	err  error
}

// start runs `shopstream run` with every group, against this stack.
func (s *stack) start(extraEnv ...string) *proc {
	s.t.Helper()
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("p%d", s.seq)
	s.mu.Unlock()
	p := &proc{name: name, log: filepath.Join(s.dir, name+".log"), http: freeAddr(s.t), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		s.t.Fatal(err)
	}
	p.cmd = exec.Command(binary, "run", "--http-addr", p.http, "--log-level", logLevel)
	p.cmd.Env = append(os.Environ(),
		"SHOPSTREAM_BROKERS="+strings.Join(s.brokers, ","),
		"SHOPSTREAM_REDIS_URL="+cmp.Or(s.redisURL, s.redis.URL()),
		"SHOPSTREAM_MAGENTO_URL="+s.sim.URL(),
		"SHOPSTREAM_MAGENTO_TOKEN="+s.sim.Token(),
		"SHOPSTREAM_CRM_URL="+s.sim.WebhookURL(devstack.SinkCRM),
		"SHOPSTREAM_FRAUD_URL="+s.sim.WebhookURL(devstack.SinkFraud),
		"SHOPSTREAM_EMAIL_URL="+s.sim.WebhookURL(devstack.SinkEmail),
		"SHOPSTREAM_CONFIG="+s.config,
		"SHOPSTREAM_GROUPS=",
	)
	p.cmd.Env = append(p.cmd.Env, extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		s.t.Fatalf("start shopstream: %v", err)
	}
	go func() { // owned by p; ends when the process does
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a process's HTTP listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// metric returns the sum of the samples of a counter or gauge on p's
// /metrics whose labels contain every one of labels (each `name="value"`).
func (p *proc) metric(ctx context.Context, name string, labels ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.http+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(rest, l)
		}
		if i := strings.LastIndexByte(rest, ' '); match && i >= 0 {
			v, err := strconv.ParseFloat(rest[i+1:], 64)
			if err != nil {
				return 0, fmt.Errorf("metric line %q: %w", line, err)
			}
			sum += v
		}
	}
	return sum, sc.Err()
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill is SIGKILL: no drain, no commit.
func (p *proc) kill() {
	if p.alive() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// term is SIGTERM; it returns how long the process took to exit, and its
// error (nil on a clean exit).
func (p *proc) term(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if p.alive() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
}

// stopAll SIGTERMs every live process, and dumps the logs of a failed test.
func (s *stack) stopAll() {
	s.mu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for _, p := range procs {
		if p.alive() {
			_, _ = p.term(60 * time.Second)
		}
	}
	if s.t.Failed() {
		for _, p := range procs {
			s.t.Logf("--- %s log (tail) ---\n%s", p.name, tailFile(p.log, 30))
		}
	}
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// lag is the total lag of every group over its topic (committed offsets
// against end offsets; a partition without a commit counts fully).
func (s *stack) lag(ctx context.Context) (int64, error) {
	var total int64
	for _, g := range s.groups {
		ends, err := s.adm.ListEndOffsets(ctx, g.Topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return 0, err
		}
		offs, err := s.adm.FetchOffsets(ctx, "shopstream."+g.Name)
		if err != nil {
			return 0, err
		}
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := offs.Lookup(g.Topic, o.Partition)
			at := int64(0)
			if ok && c.Err == nil && c.At >= 0 {
				at = c.At
			}
			total += max(o.Offset-at, 0)
		})
	}
	return total, nil
}

// waitCaughtUp waits until every group has committed everything produced.
func (s *stack) waitCaughtUp(timeout time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last int64 = -1
	for {
		l, err := s.lag(ctx)
		if err == nil && l == 0 {
			return
		}
		if err == nil {
			last = l
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("groups not caught up within %s: lag %d (%v)", timeout, last, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitFor polls cond every 100 ms until it holds, failing the test after
// timeout with what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSettled waits until every process in procs is ready (/readyz: each
// of its groups has joined) and every group of the stack is Stable with
// exactly len(procs) members: the live processes, no member that died
// and is not yet expired. kfake needs it before a SIGKILL (see
// TestKillNine).
func (s *stack) waitSettled(procs []*proc, timeout time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var ids []string
	for _, g := range s.groups {
		ids = append(ids, "shopstream."+g.Name)
	}
	for {
		last := s.settled(ctx, procs, ids)
		if last == "" {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("not settled within %s: %s", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// settled returns "" when waitSettled's condition holds, else what is not.
func (s *stack) settled(ctx context.Context, procs []*proc, ids []string) string {
	for _, p := range procs {
		if err := p.ready(ctx); err != nil {
			return fmt.Sprintf("%s not ready: %v", p.name, err)
		}
	}
	d, err := s.adm.DescribeGroups(ctx, ids...)
	if err != nil {
		return err.Error()
	}
	var states []string
	stable := 0
	for _, g := range d.Sorted() {
		states = append(states, fmt.Sprintf("%s %s/%d", g.Group, g.State, len(g.Members)))
		if g.Err == nil && g.State == "Stable" && len(g.Members) == len(procs) {
			stable++
		}
	}
	if stable != len(ids) {
		return fmt.Sprintf("want %d groups Stable with %d members: %s", len(ids), len(procs), strings.Join(states, ", "))
	}
	return ""
}

// ready returns nil when p's /readyz answers 200.
func (p *proc) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.http+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// check runs the invariant checker over the manifest, the DLQ topics and
// the simulator's calls, prints the summary and returns the verdict.
func (s *stack) check(scenario string) devstack.Verdict {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var dlqTopics []string
	for _, d := range devstack.DLQTopics() {
		dlqTopics = append(dlqTopics, s.prefix+d)
	}
	dlq, err := devstack.ReadDLQ(ctx, s.cl, dlqTopics)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	m := &devstack.Manifest{Config: s.m.Config, Records: append([]devstack.Produced(nil), s.m.Records...)}
	s.mu.Unlock()
	v := devstack.Check(m, s.sim.Calls(), dlq, s.groups)
	s.t.Logf("%s\n%s", summaryLine(scenario+"/"+s.b.Name, m, v, len(dlq)), v)
	return v
}

// summaryLine is the one-line chaos summary of a verdict.
func summaryLine(scenario string, m *devstack.Manifest, v devstack.Verdict, dlq int) string {
	var applied, skipped, dl int
	for _, g := range v.Groups {
		applied += g.Applied
		skipped += g.Skipped
		dl += g.DeadLettered
	}
	verdict := "OK"
	if !v.OK() {
		verdict = "FAIL"
	}
	return fmt.Sprintf("CHAOS %-28s events=%d applied=%d skipped=%d dlq=%d (records %d) duplicates=%d regressions=%d lost=%d not-at-highest=%d poison-not-dlq=%d verdict=%s",
		scenario, len(m.Records), applied, skipped, dl, dlq, v.DuplicateApplies, v.Regressions, v.Lost, v.NotAtHighest, v.PoisonNotDLQ, verdict)
}

// requireOK fails the test unless the verdict holds.
func requireOK(t *testing.T, v devstack.Verdict) {
	t.Helper()
	if !v.OK() {
		t.Fatalf("invariants violated:\n%s", v)
	}
}

// size picks the short or the long value.
func size[T any](short, longV T) T {
	if long {
		return longV
	}
	return short
}

// stream is the generator config of the chaos scenarios: about n events.
func stream(seed int64, n int, poison float64) devstack.GenConfig {
	// Roughly: SKUs + 2*SKUs catalog + stock + orders*~3 + customers*~2,
	// plus duplicates and stale copies.
	skus := max(n/40, 20)
	return devstack.GenConfig{Seed: seed, SKUs: skus, CatalogUpdates: 2 * skus, StockUpdates: n / 2,
		Orders: n / 20, Customers: max(n/80, 10), PoisonRate: poison}
}

var _ = topics.DLQSuffix
