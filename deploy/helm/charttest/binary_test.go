package charttest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
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

// consumerPodName is the pod name the tests give the consumer's downward
// API: a Deployment's pod. A bridge pod's is its StatefulSet's name and an
// ordinal (bridgePodName).
const consumerPodName = "shopstream-7d9f8b6c5-x2x4q"

// bridgePodName is the name of the bridge StatefulSet's pod of an ordinal.
func bridgePodName(m *manifests, ordinal int) string {
	return fmt.Sprintf("%s-%d", m.Bridge.Name, ordinal)
}

// varRef is a $(VAR) reference in an env value.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podEnv is the consumer container's environment as the kubelet would set
// it (see containerEnv).
func podEnv(t testing.TB, m *manifests, secrets, overrides map[string]string) []string {
	t.Helper()
	return containerEnv(t, container(t, m), consumerPodName, secrets, overrides)
}

// containerEnv is c's environment as the kubelet would set it for the pod
// named pod: secretKeyRef values taken from secrets (by variable name),
// metadata.name from the downward API as pod, $(VAR) in a value expanded
// from the variables defined before it; then values replaced by overrides,
// and a variable overridden with "" left out.
func containerEnv(t testing.TB, c corev1.Container, pod string, secrets, overrides map[string]string) []string {
	t.Helper()
	var env []string
	defined := map[string]string{}
	for _, e := range c.Env {
		v := varRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
			if d, ok := defined[varRef.FindStringSubmatch(ref)[1]]; ok {
				return d
			}
			return ref // the kubelet leaves an unknown reference as it is
		})
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.SecretKeyRef != nil:
			s, ok := secrets[e.Name]
			if !ok {
				t.Fatalf("env %s comes from a Secret; the test has no value for it", e.Name)
			}
			v = s
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = pod
		default:
			t.Fatalf("env %s: valueFrom %+v; the test cannot emulate it", e.Name, e.ValueFrom)
		}
		defined[e.Name] = v
		if o, ok := overrides[e.Name]; ok {
			if o == "" {
				continue
			}
			v = o
		}
		env = append(env, e.Name+"="+v)
	}
	for name := range overrides {
		if _, ok := defined[name]; !ok {
			t.Fatalf("override %s: the container does not set it", name)
		}
	}
	return env
}

// writeCA writes a self-signed CA certificate (PEM) to a new file and
// returns its path: what a mounted CA bundle holds.
func writeCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "charttest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// The real binary accepts every scenario's rendered topology and
// environment, the consumer's and the bridge's: started without brokers,
// its only complaint is the brokers.
func TestBinaryAcceptsRenderedConfig(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.String(), func(t *testing.T) {
			m := decodeScenario(t, s)
			binaryAccepts(t, m)
			if m.Bridge != nil {
				bridgeAccepts(t, m)
			}
		})
	}
}

func binaryAccepts(t *testing.T, m *manifests) {
	t.Helper()
	raw, _ := topologyOf(t, m)
	cfg := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"SHOPSTREAM_REDIS_URL":           "redis://127.0.0.1:1/0",
		"SHOPSTREAM_REDIS_PASSWORD":      "redis-password",
		"SHOPSTREAM_MAGENTO_TOKEN":       "token",
		"SHOPSTREAM_KAFKA_SASL_USERNAME": "user",
		"SHOPSTREAM_KAFKA_SASL_PASSWORD": "password",
	}
	overrides := map[string]string{
		"SHOPSTREAM_CONFIG":    cfg,
		"SHOPSTREAM_BROKERS":   "",
		"SHOPSTREAM_HTTP_ADDR": "127.0.0.1:0",
	}
	// The binary reads the Redis CA bundle while it checks its settings:
	// the test mounts one (TestDeployment checks the path is the mount's),
	// and the URL is then rediss://, as the binary requires.
	if _, ok := envMap(container(t, m))["SHOPSTREAM_REDIS_TLS_CA_FILE"]; ok {
		overrides["SHOPSTREAM_REDIS_TLS_CA_FILE"] = writeCA(t)
		secrets["SHOPSTREAM_REDIS_URL"] = "rediss://127.0.0.1:1/0"
	}
	startsUntilBrokers(t, "run", container(t, m).Args, podEnv(t, m, secrets, overrides))
}

// bridgeAccepts is binaryAccepts for the bridge StatefulSet: `shopstream
// bridge` with the rendered environment of its last pod and the topology
// it mounts.
func bridgeAccepts(t *testing.T, m *manifests) {
	t.Helper()
	raw, _ := topologyOf(t, m)
	cfg := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := bridgePodName(m, max(int(ptrOr(m.Bridge.Spec.Replicas, 1))-1, 0))
	c := bridgeContainer(t, m)
	env := containerEnv(t, c, pod, bridgeSecrets(), map[string]string{
		"SHOPSTREAM_CONFIG":  cfg,
		"SHOPSTREAM_BROKERS": "",
	})
	if !slices.Contains(env, "SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID="+pod) {
		t.Errorf("the bridge pod %s gets no SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID=%s; its environment: %q", pod, pod, env)
	}
	startsUntilBrokers(t, "bridge", c.Args, env)
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// bridgeSecrets are the values of the bridge's secretKeyRef variables.
func bridgeSecrets() map[string]string {
	secrets := map[string]string{
		"SHOPSTREAM_BRIDGE_SECRETS":      "0123456789abcdef0123456789abcdef",
		"SHOPSTREAM_KAFKA_SASL_USERNAME": "user",
		"SHOPSTREAM_KAFKA_SASL_PASSWORD": "password",
	}
	for i := range 4 {
		secrets[fmt.Sprintf("BRIDGE_HMAC_SECRET_%d", i)] = fmt.Sprintf("secret-%d-0123456789abcdef", i)
	}
	return secrets
}

// startsUntilBrokers runs the binary with args and env, without brokers,
// and expects exit code 2 with the missing brokers as the only complaint.
func startsUntilBrokers(t *testing.T, what string, args, env []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shopstreamBinary(t), args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("shopstream %s without brokers: %v, want exit code 2\n%s", what, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "shopstream: brokers: missing") {
		t.Errorf("shopstream %s reported more than the missing brokers:\n%s", what, stderr.String())
	}
}
