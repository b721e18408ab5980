// Package realkafka runs genuine Apache Kafka brokers (KRaft, combined
// broker+controller nodes) from Maven Central jars, for tests that must run
// against the real thing rather than kfake: a single node, or a 3-node
// cluster (replication factor 3, min.insync.replicas 2) whose nodes can be
// SIGKILLed and restarted. It needs java (17+) and mvn on PATH.
//
// The broker classpath (kafka_2.13, the log4j2 binding the POM lacks, and
// kafka-tools for kafka-consumer-groups) is resolved once into a cache
// directory; later runs reuse it without a download.
package realkafka

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Version is the Apache Kafka release the launcher runs; pom.xml pins the same.
const Version = "4.4.0"

//go:embed pom.xml
var pom []byte

//go:embed log4j2.properties
var log4j2 []byte

// DefaultCacheDir is where the jars are kept: $SHOPSTREAM_KAFKA_CACHE, else
// the user cache directory (~/.cache/shopstream/kafka-<Version>).
func DefaultCacheDir() string {
	if d := os.Getenv("SHOPSTREAM_KAFKA_CACHE"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "shopstream", "kafka-"+Version)
}

// Resolve makes sure cacheDir/libs holds the broker and tools classpath,
// running Maven only the first time. Concurrent callers (parallel test
// binaries) wait for one another through a lock file.
func Resolve(ctx context.Context, cacheDir string) (libs string, err error) {
	libs = filepath.Join(cacheDir, "libs")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("kafka cache %s: %w", cacheDir, err)
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("kafka cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("kafka cache lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	done := filepath.Join(cacheDir, ".complete")
	if want := string(pom); readFile(done) == want {
		return libs, nil // cached: no download
	}
	for _, tool := range []string{"java", "mvn"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("real Kafka needs %s on PATH (Java 17+ and Maven): %w", tool, err)
		}
	}
	os.RemoveAll(libs)
	pomPath := filepath.Join(cacheDir, "pom.xml")
	if err := os.WriteFile(pomPath, pom, 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "-f", pomPath, "dependency:copy-dependencies",
		"-DincludeScope=runtime", "-DoutputDirectory="+libs)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("resolve Kafka %s jars with Maven: %w\n%s", Version, err, out)
	}
	if _, err := os.Stat(filepath.Join(libs, "kafka_2.13-"+Version+".jar")); err != nil {
		return "", fmt.Errorf("Maven ran but kafka_2.13-%s.jar is missing from %s", Version, libs)
	}
	if err := os.WriteFile(filepath.Join(cacheDir, "log4j2.properties"), log4j2, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(done, pom, 0o644); err != nil {
		return "", err
	}
	return libs, nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// Options configure Start.
type Options struct {
	// Nodes is 1 (default) or 3.
	Nodes int
	// Dir holds each node's config, data and logs; required.
	Dir string
	// CacheDir holds the jars (default DefaultCacheDir()).
	CacheDir string
	// Heap is the JVM heap per node (default 1g for one node, 512m for three).
	Heap string
	// Log receives progress lines (where the logs are, readiness); may be nil.
	Log func(format string, args ...any)
	// SASLSSL, if set, adds a SASL_SSL listener on its own port to every
	// node, next to the PLAINTEXT one (which stays for inter-broker traffic
	// and test set-up).
	SASLSSL *SASLSSL
}

// SASLSSL configures the SASL_SSL listener: TLS with a PEM key store and
// the PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 mechanisms.
type SASLSSL struct {
	// CertFile and KeyFile are the broker's PEM certificate (chain) and
	// unencrypted PKCS#8 private key; the certificate must name 127.0.0.1.
	CertFile, KeyFile string
	// Users maps user names to passwords. Each user exists for PLAIN (in the
	// listener's JAAS config) and for both SCRAM mechanisms (created when
	// the storage is formatted: kafka-storage format --add-scram).
	Users map[string]string
}

// Cluster is a running set of Kafka nodes.
type Cluster struct {
	opts  Options
	libs  string
	nodes []*Node
}

// Node is one combined broker+controller.
type Node struct {
	ID             int
	BrokerPort     int
	ControllerPort int
	// SecurePort is the SASL_SSL listener's port (0 without Options.SASLSSL).
	SecurePort int
	Dir        string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start formats KRaft storage for every node, starts them and waits until
// each has logged "Kafka Server started" and accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Nodes != 1 && opts.Nodes != 3 {
		return nil, fmt.Errorf("realkafka: Nodes is %d; 1 or 3 are supported", opts.Nodes)
	}
	if opts.Dir == "" {
		return nil, errors.New("realkafka: Dir is required")
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if opts.Heap == "" {
		opts.Heap = map[int]string{1: "1g", 3: "512m"}[opts.Nodes]
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	libs, err := Resolve(ctx, opts.CacheDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, libs: libs}
	per := 2
	if opts.SASLSSL != nil {
		per = 3
	}
	ports, err := freePorts(per * opts.Nodes)
	if err != nil {
		return nil, err
	}
	var voters []string
	for i := range opts.Nodes {
		n := &Node{ID: i + 1, BrokerPort: ports[per*i], ControllerPort: ports[per*i+1], Dir: filepath.Join(opts.Dir, "node"+strconv.Itoa(i+1))}
		if opts.SASLSSL != nil {
			n.SecurePort = ports[per*i+2]
		}
		c.nodes = append(c.nodes, n)
		voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%d", n.ID, n.ControllerPort))
	}
	clusterID := newClusterID()
	formatErrs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if err := c.writeConfig(n, strings.Join(voters, ",")); err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"format", "-t", clusterID, "-c", filepath.Join(n.Dir, "server.properties")}
			if s := opts.SASLSSL; s != nil {
				for user, pw := range s.Users {
					for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
						args = append(args, "--add-scram", fmt.Sprintf("%s=[name=%s,password=%s]", m, user, pw))
					}
				}
			}
			if out, err := c.java(ctx, "-Xmx256m", "kafka.tools.StorageTool", args...); err != nil {
				formatErrs[i] = fmt.Errorf("format node %d: %w\n%s", n.ID, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(formatErrs...); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if err := c.startNode(n); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, n := range c.nodes {
		if err := c.waitReady(ctx, n); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// newClusterID returns a KRaft cluster id: 16 random bytes, base64url, not
// starting with '-' — kafka-storage would read such an id as an option
// ("argument --cluster-id/-t: expected one argument"), one start in 64;
// Kafka's own Uuid.randomUuid draws again for the same reason.
func newClusterID() string {
	b := make([]byte, 16)
	for {
		rand.Read(b)
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) writeConfig(n *Node, voters string) error {
	rf, isr := 1, 1
	if len(c.nodes) == 3 {
		rf, isr = 3, 2
	}
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=%[1]d
controller.quorum.voters=%[2]s
listeners=PLAINTEXT://127.0.0.1:%[3]d,CONTROLLER://127.0.0.1:%[4]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[3]d,CONTROLLER://127.0.0.1:%[4]d
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=%[5]s
num.partitions=6
default.replication.factor=%[6]d
min.insync.replicas=%[7]d
offsets.topic.replication.factor=%[6]d
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=%[6]d
transaction.state.log.min.isr=%[7]d
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=%[6]d
share.coordinator.state.topic.min.isr=%[7]d
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=500
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=10000
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
`, n.ID, voters, n.BrokerPort, n.ControllerPort, filepath.Join(n.Dir, "data"), rf, isr)
	if s := c.opts.SASLSSL; s != nil {
		props = c.saslSSLProps(props, n, s)
	}
	if err := os.MkdirAll(filepath.Join(n.Dir, "logs"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.Dir, "server.properties"), []byte(props), 0o644)
}

// saslSSLProps adds the SASL_SSL listener to props.
func (c *Cluster) saslSSLProps(props string, n *Node, s *SASLSSL) string {
	plaintext := fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", n.BrokerPort)
	secure := fmt.Sprintf("SASL_SSL://127.0.0.1:%d", n.SecurePort)
	props = strings.Replace(props, "listeners="+plaintext, "listeners="+plaintext+","+secure, 1)
	props = strings.Replace(props, "advertised.listeners="+plaintext, "advertised.listeners="+plaintext+","+secure, 1)
	props = strings.Replace(props, "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL", 1)
	var plainUsers strings.Builder
	for user, pw := range s.Users {
		fmt.Fprintf(&plainUsers, " user_%s=%q", user, pw)
	}
	return props + fmt.Sprintf(`sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.certificate.chain=%s
listener.name.sasl_ssl.ssl.keystore.key=%s
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required%s;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
`, pemProp(s.CertFile), pemProp(s.KeyFile), plainUsers.String())
}

// pemProp is a PEM file's content as one properties value: each line ends
// with an escaped newline and a line continuation.
func pemProp(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines, "\\n\\\n")
}

// java runs a main class on the Kafka classpath in the foreground.
func (c *Cluster) java(ctx context.Context, heap, class string, args ...string) ([]byte, error) {
	argv := append([]string{heap, "-Dlog4j2.configurationFile=" + filepath.Join(c.opts.CacheDir, "log4j2.properties"),
		"-Dkafka.logs.dir=" + c.opts.Dir, "-cp", filepath.Join(c.libs, "*"), class}, args...)
	return exec.CommandContext(ctx, "java", argv...).CombinedOutput()
}

func (c *Cluster) startNode(n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	logs := filepath.Join(n.Dir, "logs")
	os.Remove(filepath.Join(logs, "server.log")) // readiness is read from a fresh log
	out, err := os.OpenFile(filepath.Join(logs, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("java", "-Xms"+c.opts.Heap, "-Xmx"+c.opts.Heap,
		"-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
		"-Dkafka.logs.dir="+logs,
		"-Dlog4j2.configurationFile="+filepath.Join(c.opts.CacheDir, "log4j2.properties"),
		"-cp", filepath.Join(c.libs, "*"), "kafka.Kafka", filepath.Join(n.Dir, "server.properties"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start node %d: %w", n.ID, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	done := n.done
	go func() {
		cmd.Wait()
		out.Close()
		close(done)
	}()
	c.opts.Log("kafka %s node %d (pid %d) on 127.0.0.1:%d; logs in %s", Version, n.ID, cmd.Process.Pid, n.BrokerPort, logs)
	return nil
}

func (c *Cluster) waitReady(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	logPath := filepath.Join(n.Dir, "logs", "server.log")
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	for {
		if logContains(logPath, "Kafka Server started") {
			if conn, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
				conn.Close()
				c.opts.Log("kafka node %d ready", n.ID)
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("kafka node %d exited during start; see %s:\n%s", n.ID, logPath, tail(filepath.Join(n.Dir, "logs", "stdout.log")))
		case <-ctx.Done():
			return fmt.Errorf("kafka node %d not ready: %w; see %s", n.ID, ctx.Err(), logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func logContains(path, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Addr is the node's broker address.
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.BrokerPort) }

// SecureAddr is the node's SASL_SSL listener address ("" without one).
func (n *Node) SecureAddr() string {
	if n.SecurePort == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(n.SecurePort)
}

// SecureBrokers returns every node's SASL_SSL address (nil without one).
func (c *Cluster) SecureBrokers() []string {
	if c.opts.SASLSSL == nil {
		return nil
	}
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.SecureAddr()
	}
	return out
}

// Brokers returns every node's broker address.
func (c *Cluster) Brokers() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node with id (1-based), or nil.
func (c *Cluster) Node(id int) *Node {
	if id < 1 || id > len(c.nodes) {
		return nil
	}
	return c.nodes[id-1]
}

// Kill SIGKILLs node id and waits for it to exit.
func (c *Cluster) Kill(id int) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("realkafka: no node %d", id)
	}
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	c.opts.Log("kafka node %d killed", id)
	return nil
}

// Restart starts node id again on its ports and data, and waits until it
// is ready.
func (c *Cluster) Restart(ctx context.Context, id int) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("realkafka: no node %d", id)
	}
	if err := c.startNode(n); err != nil {
		return err
	}
	return c.waitReady(ctx, n)
}

// Stop stops every node by pid: SIGTERM, then SIGKILL after 20 s.
func (c *Cluster) Stop() {
	for _, n := range c.nodes {
		n.mu.Lock()
		if n.cmd != nil {
			n.cmd.Process.Signal(syscall.SIGTERM)
		}
		n.mu.Unlock()
	}
	for _, n := range c.nodes {
		n.mu.Lock()
		cmd, done := n.cmd, n.done
		n.mu.Unlock()
		if cmd == nil {
			continue
		}
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	}
}

// ConsumerGroups runs Kafka's own kafka-consumer-groups tool against the
// cluster (--bootstrap-server is added) and returns its output: the
// reference for lag and offset resets.
func (c *Cluster) ConsumerGroups(ctx context.Context, args ...string) (string, error) {
	return ConsumerGroups(ctx, c.opts.CacheDir, c.Brokers(), args...)
}

// ConsumerGroups runs kafka-consumer-groups (ConsumerGroupCommand from the
// cached kafka-tools jars) against any brokers, a cluster started elsewhere
// included.
func ConsumerGroups(ctx context.Context, cacheDir string, brokers []string, args ...string) (string, error) {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	libs, err := Resolve(ctx, cacheDir)
	if err != nil {
		return "", err
	}
	argv := []string{"-Xmx256m", "-Dlog4j2.configurationFile=" + filepath.Join(cacheDir, "log4j2.properties"),
		"-Dkafka.logs.dir=" + os.TempDir(), "-cp", filepath.Join(libs, "*"),
		"org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", strings.Join(brokers, ",")}
	out, err := exec.CommandContext(ctx, "java", append(argv, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return string(out), fmt.Errorf("kafka-consumer-groups %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out), nil
}

// ConsoleProducer runs Kafka's own kafka-console-producer (the Java client,
// its default partitioner) against brokers: each line of input is
// "key<TAB>value", produced to topic with acks=all. The reference for where
// a Java producer puts a keyed record.
func ConsoleProducer(ctx context.Context, cacheDir string, brokers []string, topic, input string) error {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	libs, err := Resolve(ctx, cacheDir)
	if err != nil {
		return err
	}
	argv := []string{"-Xmx256m", "-Dlog4j2.configurationFile=" + filepath.Join(cacheDir, "log4j2.properties"),
		"-Dkafka.logs.dir=" + os.TempDir(), "-cp", filepath.Join(libs, "*"),
		"org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", strings.Join(brokers, ","), "--topic", topic,
		"--property", "parse.key=true", "--property", "key.separator=\t", "--producer-property", "acks=all"}
	cmd := exec.CommandContext(ctx, "java", argv...)
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kafka-console-producer: %w\n%s", err, out)
	}
	return nil
}
