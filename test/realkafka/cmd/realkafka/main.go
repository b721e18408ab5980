// Command realkafka starts a genuine Apache Kafka for local work and CI:
//
//	realkafka fetch                  resolve the jars into the cache (once)
//	realkafka [flags] single         one combined broker+controller
//	realkafka [flags] cluster3       three nodes, replication factor 3, min.insync.replicas 2
//
// It prints where the logs are, writes the bootstrap servers to
// --brokers-file once every node is ready, and runs until SIGINT/SIGTERM,
// when it stops the nodes by pid.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/shopstream/shopstream/test/realkafka"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "realkafka:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "directory for the nodes' config, data and logs (default: a new temporary directory)")
	cache := flag.String("cache", realkafka.DefaultCacheDir(), "directory of the cached jars (env SHOPSTREAM_KAFKA_CACHE)")
	brokersFile := flag.String("brokers-file", "", "write the bootstrap servers here once ready")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: realkafka [flags] fetch|single|cluster3\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nodes := 0
	switch flag.Arg(0) {
	case "fetch":
		libs, err := realkafka.Resolve(ctx, *cache)
		if err != nil {
			return err
		}
		fmt.Printf("Apache Kafka %s jars in %s\n", realkafka.Version, libs)
		return nil
	case "single":
		nodes = 1
	case "cluster3":
		nodes = 3
	default:
		flag.Usage()
		return fmt.Errorf("unknown command %q", flag.Arg(0))
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "realkafka-")
		if err != nil {
			return err
		}
		*dir = d
	}
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	c, err := realkafka.Start(ctx, realkafka.Options{Nodes: nodes, Dir: *dir, CacheDir: *cache, Log: logf})
	if err != nil {
		return err
	}
	defer c.Stop()
	brokers := strings.Join(c.Brokers(), ",")
	fmt.Printf("Apache Kafka %s ready: bootstrap servers %s\n", realkafka.Version, brokers)
	if *brokersFile != "" {
		if err := os.WriteFile(*brokersFile, []byte(brokers+"\n"), 0o644); err != nil {
			return err
		}
	}
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}
