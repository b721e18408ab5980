package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shopstream/shopstream/topics"
)

// DefaultPartitions is the partition count of the topics StartKafka creates
// unless KafkaOptions.Partitions says otherwise.
const DefaultPartitions = 6

// DefaultTopics returns the four default topics followed by their
// dead-letter topics.
func DefaultTopics() []string {
	base := []string{topics.TopicCatalog, topics.TopicInventory, topics.TopicOrder, topics.TopicCustomer}
	out := append([]string(nil), base...)
	for _, t := range base {
		out = append(out, topics.DLQTopic(t))
	}
	return out
}

// DLQTopics returns the dead-letter topics of the four default topics.
func DLQTopics() []string {
	return []string{
		topics.DLQTopic(topics.TopicCatalog),
		topics.DLQTopic(topics.TopicInventory),
		topics.DLQTopic(topics.TopicOrder),
		topics.DLQTopic(topics.TopicCustomer),
	}
}

// KafkaOptions configures StartKafka. The zero value starts a one-broker
// cluster on a random loopback port with DefaultTopics.
type KafkaOptions struct {
	// Listen is the broker's host:port, for example "127.0.0.1:9092".
	// Empty means a random port on 127.0.0.1; an empty host means
	// 127.0.0.1. The broker advertises this address to clients, so it
	// must not be an unspecified address such as 0.0.0.0.
	Listen string
	// Partitions is the partition count of every created topic; 0 means
	// DefaultPartitions.
	Partitions int
	// Topics are created at start; nil means DefaultTopics(). Automatic
	// topic creation is off: producing to any other topic fails.
	Topics []string
	// Extra kfake options, applied after ours (for fault-injection tests).
	Extra []kfake.Opt
}

// Kafka is an embedded single-broker Kafka cluster.
type Kafka struct {
	cluster *kfake.Cluster
}

// StartKafka starts an embedded Kafka with the topics of opts created. ctx
// only bounds the start: the cluster runs until Close.
func StartKafka(ctx context.Context, opts KafkaOptions) (*Kafka, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start kafka: %w", err)
	}
	kopts, err := opts.kfakeOpts()
	if err != nil {
		return nil, fmt.Errorf("start kafka: %w", err)
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start kafka on %q: %w", opts.Listen, err)
	}
	return &Kafka{cluster: c}, nil
}

// kfakeOpts validates o and translates it; the error names every problem.
func (o KafkaOptions) kfakeOpts() ([]kfake.Opt, error) {
	var errs []error
	partitions := o.Partitions
	switch {
	case partitions == 0:
		partitions = DefaultPartitions
	case partitions < 0:
		errs = append(errs, fmt.Errorf("KafkaOptions.Partitions = %d: must be positive (0 means %d)", partitions, DefaultPartitions))
	}
	ts := o.Topics
	if ts == nil {
		ts = DefaultTopics()
	}
	for i, t := range ts {
		if t == "" {
			errs = append(errs, fmt.Errorf("KafkaOptions.Topics[%d] is empty", i))
		}
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), ts...)}

	if o.Listen != "" {
		host, portStr, err := net.SplitHostPort(o.Listen)
		if err != nil {
			errs = append(errs, fmt.Errorf("KafkaOptions.Listen %q: %w", o.Listen, err))
		} else {
			if host == "" {
				host = "127.0.0.1"
			}
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				errs = append(errs, fmt.Errorf("KafkaOptions.Listen %q: the broker advertises its listen address to clients, so it must be a concrete address such as 127.0.0.1, not %s", o.Listen, host))
			}
			port, err := strconv.Atoi(portStr)
			if err != nil || port < 0 || port > 65535 {
				errs = append(errs, fmt.Errorf("KafkaOptions.Listen %q: bad port %q", o.Listen, portStr))
			}
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			// kfake listens on 127.0.0.1:<port>; listen on the asked host instead.
			opts = append(opts, kfake.Ports(port), kfake.ListenFn(func(network, _ string) (net.Listener, error) {
				return net.Listen(network, addr)
			}))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return append(opts, o.Extra...), nil
}

// Addrs returns the brokers' host:port addresses, for kgo.SeedBrokers.
func (k *Kafka) Addrs() []string { return k.cluster.ListenAddrs() }

// Cluster returns the underlying kfake cluster, for tests that inject
// protocol errors with ControlKey.
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// Close stops the cluster and drops all its data. It is safe to call more
// than once.
func (k *Kafka) Close() { k.cluster.Close() }
