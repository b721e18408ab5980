package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKafkaSecuritySettings(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want kafkaSecurity
		errs []string // each must appear; none means no error
	}{
		{name: "none", want: kafkaSecurity{}},
		{name: "scram from env", env: map[string]string{envKafkaTLS: "true", envKafkaMechanism: "SCRAM-SHA-512", envKafkaUsername: "u", envKafkaPassword: "p"},
			want: kafkaSecurity{TLS: true, Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}},
		{name: "password file", args: []string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u", "--kafka-sasl-password-file", pwFile},
			want: kafkaSecurity{Mechanism: "PLAIN", Username: "u", Password: "from-file", PasswordFile: pwFile}},
		{name: "flag beats env", args: []string{"--kafka-sasl-username", "flag"}, env: map[string]string{envKafkaMechanism: "PLAIN", envKafkaUsername: "env", envKafkaPassword: "p"},
			want: kafkaSecurity{Mechanism: "PLAIN", Username: "flag", Password: "p"}},
		{name: "every problem at once", env: map[string]string{envKafkaMechanism: "GSSAPI", envKafkaTLS: "maybe", envKafkaCertFile: "x.pem", envKafkaCAFile: filepath.Join(dir, "missing.pem")},
			errs: []string{"kafka-sasl-mechanism", "SHOPSTREAM_KAFKA_TLS", "kafka-tls-key-file"}},
		{name: "sasl without user and password", env: map[string]string{envKafkaMechanism: "SCRAM-SHA-256"},
			errs: []string{"kafka-sasl-username", "SHOPSTREAM_KAFKA_SASL_PASSWORD"}},
		{name: "password twice", args: []string{"--kafka-sasl-password-file", pwFile}, env: map[string]string{envKafkaMechanism: "PLAIN", envKafkaUsername: "u", envKafkaPassword: "p"},
			errs: []string{"not both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var s securityFlags
			s.register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := s.resolve(fs, envOf(tc.env))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.errs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// The certificate files are read when connecting, and a bad one is named.
func TestKafkaTLSFilesReadAtConnect(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	_, err := kafkaSecurity{TLS: true, CAFile: missing}.opts()
	if err == nil || !strings.Contains(err.Error(), "SHOPSTREAM_KAFKA_TLS_CA_FILE") {
		t.Errorf("missing CA file: %v", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	_, err = kafkaSecurity{TLS: true, CAFile: notPEM}.opts()
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("not PEM: %v", err)
	}
	opts, err := kafkaSecurity{TLS: true, Mechanism: "SCRAM-SHA-256", Username: "u", Password: "p"}.opts()
	if err != nil || len(opts) != 2 {
		t.Errorf("opts = %d, %v", len(opts), err)
	}
}

// No flag takes a password, and usage never shows the environment's values.
func TestSecretsNeverInUsage(t *testing.T) {
	env := map[string]string{envKafkaPassword: "kafka-secret-1", envRedisPassword: "redis-secret-2",
		"SHOPSTREAM_MAGENTO_TOKEN": "magento-secret-3", envKafkaUsername: "user-x", envKafkaMechanism: "PLAIN"}
	_, err := parseRunConfig([]string{"--no-such-flag"}, envOf(env))
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{"kafka-secret-1", "redis-secret-2", "magento-secret-3"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("usage shows %q", s)
		}
	}
	for _, f := range []string{"-kafka-sasl-password ", "-redis-password "} {
		if strings.Contains(err.Error(), f) {
			t.Errorf("a flag %q takes a secret on the command line", f)
		}
	}
	for _, f := range []string{"kafka-tls-ca-file", "kafka-sasl-mechanism", "kafka-sasl-password-file", "redis-tls-ca-file", "redis-password-file"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("usage lacks --%s", f)
		}
	}
}

func TestRedisURLForms(t *testing.T) {
	for _, tc := range []struct {
		url     string
		env     map[string]string
		addrs   string
		user    string
		pw      string
		db      int
		master  string
		cluster bool
		tls     bool
		err     string
	}{
		{url: "redis://127.0.0.1:6379/2", addrs: "127.0.0.1:6379", db: 2},
		{url: "rediss://app:url-pw@redis.internal:6380/0", addrs: "redis.internal:6380", user: "app", pw: "url-pw", tls: true},
		{url: "rediss://app:url-pw@redis.internal/0", env: map[string]string{envRedisPassword: "env-pw"}, addrs: "redis.internal:6379", user: "app", pw: "env-pw", tls: true},
		{url: "redis://a:7000,b:7001,c:7002", addrs: "a:7000,b:7001,c:7002"},
		{url: "rediss+cluster://cfg.cache.amazonaws.com:6379", addrs: "cfg.cache.amazonaws.com:6379", cluster: true, tls: true},
		{url: "redis+sentinel://s1:26379,s2:26379/1?master=mymaster", addrs: "s1:26379,s2:26379", db: 1, master: "mymaster"},
		{url: "redis+sentinel://s1:26379", err: "master=NAME"},
		{url: "http://x:1", err: "redis://"},
		{url: "redis://x:1/abc", err: "database number"},
		{url: "redis://us er:p@ss@x:1/%zz", err: "not a valid URL"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o, err := redisConfig{URL: tc.url}.options(envOf(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "p@ss") {
					t.Errorf("error quotes the URL: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(o.Addrs, ","); got != tc.addrs || o.Username != tc.user || o.Password != tc.pw || o.DB != tc.db ||
				o.MasterName != tc.master || o.IsClusterMode != tc.cluster || (o.TLSConfig != nil) != tc.tls {
				t.Errorf("got addrs=%s user=%q pw=%q db=%d master=%q cluster=%v tls=%v", got, o.Username, o.Password, o.DB, o.MasterName, o.IsClusterMode, o.TLSConfig != nil)
			}
		})
	}
}
