package charttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shopstream-charttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// KEDA's webhooks log through controller-runtime, which complains with
	// a stack trace when no logger was set.
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// shopstreamBinary builds the real binary from the working tree, with the
// main module's own go.mod (the image builds the same way).
func shopstreamBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "shopstream")
		cmd := exec.Command(goBin(), "build", "-o", binPath, "./cmd/shopstream")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/shopstream (in %s): %v\n%s", repoRoot, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// podEnv is the container's environment as the kubelet would set it, with
// secretKeyRef values taken from secrets (by variable name) and values
// replaced by overrides; a variable overridden with "" is left out.
func podEnv(t testing.TB, m *manifests, secrets, overrides map[string]string) []string {
	t.Helper()
	var env []string
	seen := map[string]bool{}
	for _, e := range container(t, m).Env {
		seen[e.Name] = true
		v := e.Value
		if e.ValueFrom != nil {
			s, ok := secrets[e.Name]
			if !ok {
				t.Fatalf("env %s comes from a Secret; the test has no value for it", e.Name)
			}
			v = s
		}
		if o, ok := overrides[e.Name]; ok {
			if o == "" {
				continue
			}
			v = o
		}
		env = append(env, e.Name+"="+v)
	}
	for name := range overrides {
		if !seen[name] {
			t.Fatalf("override %s: the Deployment does not set it", name)
		}
	}
	return env
}

// The real binary accepts every scenario's rendered topology and
// environment: started without brokers, its only complaint is the brokers.
func TestBinaryAcceptsRenderedConfig(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			binaryAccepts(t, decodeScenario(t, s))
		})
	}
}

func binaryAccepts(t *testing.T, m *manifests) {
	t.Helper()
	bin := shopstreamBinary(t)
	raw, _ := topologyOf(t, m)
	cfg := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	env := podEnv(t, m, map[string]string{
		"SHOPSTREAM_REDIS_URL":           "redis://127.0.0.1:1/0",
		"SHOPSTREAM_MAGENTO_TOKEN":       "token",
		"SHOPSTREAM_KAFKA_SASL_USERNAME": "user",
		"SHOPSTREAM_KAFKA_SASL_PASSWORD": "password",
	}, map[string]string{
		"SHOPSTREAM_CONFIG":    cfg,
		"SHOPSTREAM_BROKERS":   "",
		"SHOPSTREAM_HTTP_ADDR": "127.0.0.1:0",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, container(t, m).Args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("shopstream run without brokers: %v, want exit code 2\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "shopstream: brokers: missing") {
		t.Errorf("shopstream run reported more than the missing brokers:\n%s", stderr.String())
	}
}
