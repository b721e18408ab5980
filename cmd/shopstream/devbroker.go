package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/shopstream/shopstream/internal/devstack"
)

// runDevBroker runs an embedded Kafka (kfake) with the default topics and
// their DLQ topics until ctx ends.
func runDevBroker(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("dev-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := envDefault(getenv, "SHOPSTREAM_DEV_BROKER_LISTEN", "127.0.0.1:9092")
	partitions := 0
	fs.StringVar(&listen, "listen", listen, "host:port the broker listens on and advertises (env SHOPSTREAM_DEV_BROKER_LISTEN)")
	fs.IntVar(&partitions, "partitions", devstack.DefaultPartitions, "partitions of every topic")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	k, err := devstack.StartKafka(ctx, devstack.KafkaOptions{Listen: listen, Partitions: partitions})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("listen: %w", err)}
	}
	defer k.Close()
	fmt.Fprintf(stdout, "dev-broker: embedded Kafka on %s with topics %s (%d partitions each); Ctrl-C stops it\n",
		strings.Join(k.Addrs(), ","), strings.Join(devstack.DefaultTopics(), ", "), partitions)
	<-ctx.Done()
	return nil
}

func envDefault(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
