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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shopstream/shopstream/internal/kafkatest"
)

// long is SHOPSTREAM_CHAOS=long: the full-size scenarios of `make chaos`.
var long = os.Getenv("SHOPSTREAM_CHAOS") == "long"

// binary is the shopstream binary built once by TestMain.
var binary string

// backend is a Kafka the suite runs on (internal/kafkatest).
type backend = kafkatest.Backend

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

	bs, stop, err := kafkatest.Setup("chaos suite", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	backends = bs
	return m.Run()
}

// eachBackend runs f on every backend; realToo false runs it on kfake only.
func eachBackend(t *testing.T, realToo bool, f func(t *testing.T, b *backend)) {
	for _, b := range backends {
		if b.Real() && !realToo {
			continue
		}
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// eachRealBackend runs f on every real Kafka backend (or skips, saying why).
func eachRealBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	kafkatest.EachReal(t, backends, f)
}
