package redistest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/shopstream/shopstream/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	opts.MaxRetries = -1 // report an outage at once
	opts.DialTimeout = time.Second
	cl := redis.NewClient(opts)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func TestStopAndRestartOnSamePort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	addr := srv.Addr()
	if got, want := srv.URL(), "redis://"+addr+"/0"; got != want {
		t.Fatalf("URL() = %q, want %q", got, want)
	}
	cl := newClient(t, srv.URL())

	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping running server: %v", err)
	}
	if err := cl.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}

	srv.Stop()
	if srv.Running() {
		t.Fatal("Running() after Stop")
	}
	if err := cl.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded after Stop")
	}
	srv.Stop() // a second Stop is a no-op

	srv.Start()
	if srv.Addr() != addr {
		t.Fatalf("address changed across restart: %s, then %s", addr, srv.Addr())
	}
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
	if err := cl.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("get k after restart: err = %v, want redis.Nil (empty data)", err)
	}
	srv.Start() // Start on a running server is a no-op
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after second Start: %v", err)
	}
}

func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	cl := newClient(t, srv.URL())
	if err := cl.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}

	srv.Kill()
	if err := cl.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded after Kill")
	}

	srv.Restart() // Stop on a killed server is a no-op, then Start
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
	if n, err := cl.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("exists k after restart = %d, %v; want 0 (empty data)", n, err)
	}

	srv.Restart() // Restart of a running server
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after second Restart: %v", err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	ca, cb := newClient(t, a.URL()), newClient(t, b.URL())
	if err := ca.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatalf("set on a: %v", err)
	}
	if err := cb.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("get k on b: err = %v, want redis.Nil", err)
	}
	a.Stop()
	if err := cb.Ping(ctx).Err(); err != nil {
		t.Fatalf("b affected by stopping a: %v", err)
	}
}

func TestTLSAndACLUser(t *testing.T) {
	t.Parallel()
	srv := redistest.StartWith(t, redistest.Options{TLS: true, Users: map[string]string{"shopstream": "s3cret-pw"}})
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx := context.Background()
	dial := func(user, pw string, roots *x509.CertPool) error {
		cl := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: pw, MaxRetries: -1,
			TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}})
		defer cl.Close()
		return cl.Ping(ctx).Err()
	}
	if err := dial("shopstream", "s3cret-pw", pool); err != nil {
		t.Fatalf("TLS + ACL user: %v", err)
	}
	if err := dial("shopstream", "wrong", pool); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v, want WRONGPASS", err)
	}
	if err := dial("", "", pool); err == nil {
		t.Fatal("the default user is enabled")
	}
	if err := dial("shopstream", "s3cret-pw", x509.NewCertPool()); err == nil {
		t.Fatal("an untrusted CA was accepted")
	}
	if !strings.HasPrefix(srv.URL(), "rediss://") {
		t.Fatalf("URL() = %q, want rediss://", srv.URL())
	}
}

// StartCluster forms a cluster whose masters share the slots; a cluster
// client reaches every master, and the servers refuse a command whose keys
// hash to different slots.
func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	addrs := c.Addrs()
	if len(addrs) != 3 || len(c.Nodes()) != 3 {
		t.Fatalf("Addrs() = %v, Nodes() = %d; want 3", addrs, len(c.Nodes()))
	}
	if got, want := c.URL(), "redis://"+strings.Join(addrs, ","); got != want {
		t.Fatalf("URL() = %q, want %q", got, want)
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1], MaxRetries: -1})
	t.Cleanup(func() { _ = cl.Close() })

	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	owned := 0
	for _, sh := range shards {
		for _, r := range sh.Slots {
			owned += int(r.End - r.Start + 1)
		}
	}
	if len(shards) != 3 || owned != 16384 {
		t.Fatalf("%d shards own %d slots, want 3 owning 16384", len(shards), owned)
	}

	const keys = 60
	for i := range keys {
		if err := cl.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatalf("set through the cluster client: %v", err)
		}
	}
	total := int64(0)
	for _, addr := range addrs {
		direct := newClient(t, "redis://"+addr)
		n, err := direct.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("master %s holds no key of %d", addr, keys)
		}
		total += n
	}
	if total != keys {
		t.Errorf("the masters hold %d keys, want %d", total, keys)
	}
	if err := cl.MGet(ctx, "k1", "k2", "k3").Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
		t.Errorf("MGET across slots: %v, want CROSSSLOT", err)
	}
}
