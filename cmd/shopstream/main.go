// Command shopstream consumes commerce events from Kafka and applies them to
// Magento / Adobe Commerce, CRM, fraud and email systems: per-SKU order, a
// Redis version fence against stale updates, retries and dead letters.
//
//	shopstream run         the service
//	shopstream demo        the embedded default: Kafka, Redis, a Magento simulator and traffic
//	shopstream dev-broker  an embedded Kafka with the default topics, for local work
//	shopstream lag         consumer lag per group, topic and partition
//	shopstream replay      reset a group's offsets (dry run unless --execute)
//	shopstream dlq         list and redrive dead letters
//	shopstream topics      create and describe the topics
//	shopstream bridge      HTTP → Kafka: CloudEvents from Magento, HMAC-signed
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

const usage = `usage: shopstream <command> [flags]

commands:
  run          consume and apply events (the service)
  demo         run the embedded default: Kafka, Redis, Magento simulator, traffic; prints a verdict
  dev-broker   run an embedded Kafka with the default topics and DLQ topics created
  lag          per group/topic/partition: committed, end, lag, time lag (--json, --fail-over N)
  replay       reset a group's offsets like kafka-consumer-groups --reset-offsets; dry run unless --execute
  dlq          list and redrive dead letters (dry run unless --execute)
  topics       ensure (create) and describe shopstream's topics
  bridge       accept signed CloudEvents over HTTP (POST /v1/events) and produce them to Kafka

Every flag also reads an environment variable; "shopstream <command> -h" lists them.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shopstream:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: errors.New("no command given")}
	}
	installRedisLogger(stderr, args, getenv)
	switch args[0] {
	case "run":
		return runService(ctx, args[1:], stderr, getenv)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr, getenv)
	case "dev-broker":
		return runDevBroker(ctx, args[1:], stdout, stderr, getenv)
	case "lag":
		return runLag(ctx, args[1:], stdout, stderr, getenv)
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr, getenv)
	case "dlq":
		return runDLQ(ctx, args[1:], stdout, stderr, getenv)
	case "topics":
		return runTopics(ctx, args[1:], stdout, stderr, getenv)
	case "bridge":
		return runBridge(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
	}
}
