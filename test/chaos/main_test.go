// Package chaos is shopstream's fault-injection suite (issue 7): real
// `shopstream run` processes (SIGKILL and SIGTERM are real signals), a real
// redis-server, Kafka (kfake over TCP, and a real Apache Kafka for the
// scenarios marked so) and the devstack Magento/webhook simulator, with
// devstack.Check as the invariant checker: it reads the produced manifest,
// the DLQ topics and the simulator's recorded calls, never the processor's
// own counters.
//
// `go test ./test/chaos` (and so `make test`) runs the short version of every
// scenario; SHOPSTREAM_CHAOS=long (`make chaos`) the long one.
package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/test/realkafka"
)

// long is SHOPSTREAM_CHAOS=long: the full-size scenarios of `make chaos`.
var long = os.Getenv("SHOPSTREAM_CHAOS") == "long"

// binary is the shopstream binary built once by TestMain.
var binary string

// backend is a Kafka the suite runs on.
type backend struct {
	name   string
	shared []string // brokers of a real cluster; nil for kfake (one per scenario)
}

func (b *backend) real() bool { return b.shared != nil }

var backends []*backend

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shopstream-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "shopstream")
	build := exec.Command("go", "build", "-o", binary, "github.com/shopstream/shopstream/cmd/shopstream")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build shopstream: %v\n", err)
		return 1
	}

	mode := os.Getenv("SHOPSTREAM_TEST_KAFKA")
	switch mode {
	case "", "both", "kfake", "real":
	default:
		fmt.Fprintf(os.Stderr, "SHOPSTREAM_TEST_KAFKA=%q: want both (default), kfake or real\n", mode)
		return 2
	}
	if mode != "real" {
		backends = append(backends, &backend{name: "kfake"})
	}
	if mode != "kfake" {
		if addrs := os.Getenv("SHOPSTREAM_TEST_BROKERS"); addrs != "" {
			fmt.Printf("chaos suite: real Kafka at %s (SHOPSTREAM_TEST_BROKERS)\n", addrs)
			backends = append(backends, &backend{name: "kafka", shared: strings.Split(addrs, ",")})
		} else {
			kdir := filepath.Join(dir, "kafka")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			c, err := realkafka.Start(ctx, realkafka.Options{Dir: kdir, Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }})
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "start a real Kafka for the chaos suite: %v\n(set SHOPSTREAM_TEST_BROKERS to use a running cluster, or SHOPSTREAM_TEST_KAFKA=kfake to run on kfake only)\n", err)
				return 1
			}
			defer c.Stop()
			fmt.Printf("chaos suite: Apache Kafka %s at %s\n", realkafka.Version, strings.Join(c.Brokers(), ","))
			backends = append(backends, &backend{name: "kafka-" + realkafka.Version, shared: c.Brokers()})
		}
	}
	return m.Run()
}

// eachBackend runs f on every backend; realToo false runs it on kfake only.
func eachBackend(t *testing.T, realToo bool, f func(t *testing.T, b *backend)) {
	for _, b := range backends {
		if b.real() && !realToo {
			continue
		}
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// eachRealBackend runs f on every real Kafka backend, or skips the test
// (saying why) when SHOPSTREAM_TEST_KAFKA=kfake excluded real Kafka.
func eachRealBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	ran := false
	for _, b := range backends {
		if b.real() {
			ran = true
			t.Run(b.name, func(t *testing.T) { f(t, b) })
		}
	}
	if !ran {
		t.Skip("needs a real Kafka; SHOPSTREAM_TEST_KAFKA=kfake excluded it")
	}
}
