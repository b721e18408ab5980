package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaSecurity is how every command (run, the admin commands, bridge)
// connects to Kafka: TLS and SASL. Secrets come from the environment or
// from files, never from a flag, so they do not show in `ps` or in usage.
type kafkaSecurity struct {
	TLS          bool
	CAFile       string
	CertFile     string
	KeyFile      string
	ServerName   string
	Mechanism    string
	Username     string
	Password     string // from SHOPSTREAM_KAFKA_SASL_PASSWORD or the file
	PasswordFile string
}

// Environment variables of the Kafka security settings. The chart sets
// these names (deploy/helm/shopstream): they are a contract.
const (
	envKafkaTLS          = "SHOPSTREAM_KAFKA_TLS"
	envKafkaCAFile       = "SHOPSTREAM_KAFKA_TLS_CA_FILE"
	envKafkaCertFile     = "SHOPSTREAM_KAFKA_TLS_CERT_FILE"
	envKafkaKeyFile      = "SHOPSTREAM_KAFKA_TLS_KEY_FILE"
	envKafkaServerName   = "SHOPSTREAM_KAFKA_TLS_SERVER_NAME"
	envKafkaMechanism    = "SHOPSTREAM_KAFKA_SASL_MECHANISM"
	envKafkaUsername     = "SHOPSTREAM_KAFKA_SASL_USERNAME"
	envKafkaPassword     = "SHOPSTREAM_KAFKA_SASL_PASSWORD"
	envKafkaPasswordFile = "SHOPSTREAM_KAFKA_SASL_PASSWORD_FILE"

	envRedisCAFile       = "SHOPSTREAM_REDIS_TLS_CA_FILE"
	envRedisUsername     = "SHOPSTREAM_REDIS_USERNAME"
	envRedisPassword     = "SHOPSTREAM_REDIS_PASSWORD"
	envRedisPasswordFile = "SHOPSTREAM_REDIS_PASSWORD_FILE"
)

// securityFlags registers the Kafka security flags on fs; the environment
// is read by resolve, after parsing, so usage never shows a value from it.
type securityFlags struct {
	k    kafkaSecurity
	tls  string // "true"/"false"/"" as given
	strs []setting
}

func (s *securityFlags) register(fs *flag.FlagSet) {
	s.strs = []setting{
		{"kafka-tls", envKafkaTLS, "connect to Kafka with TLS (true/false; implied by the other --kafka-tls-* settings)", &s.tls},
		{"kafka-tls-ca-file", envKafkaCAFile, "PEM file of the CAs that sign the brokers' certificates (default: the system roots)", &s.k.CAFile},
		{"kafka-tls-cert-file", envKafkaCertFile, "PEM client certificate for mutual TLS (with --kafka-tls-key-file)", &s.k.CertFile},
		{"kafka-tls-key-file", envKafkaKeyFile, "PEM private key of the client certificate", &s.k.KeyFile},
		{"kafka-tls-server-name", envKafkaServerName, "name to verify in the brokers' certificates (default: the broker host)", &s.k.ServerName},
		{"kafka-sasl-mechanism", envKafkaMechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no SASL)", &s.k.Mechanism},
		{"kafka-sasl-username", envKafkaUsername, "SASL user name", &s.k.Username},
		{"kafka-sasl-password-file", envKafkaPasswordFile, "file holding the SASL password (or set " + envKafkaPassword + "; never a flag)", &s.k.PasswordFile},
	}
	for _, st := range s.strs {
		fs.StringVar(st.dst, st.flag, "", st.usage+" (env "+st.env+")")
	}
}

// resolve fills unset flags from the environment, reads the password and
// validates. Every problem is returned at once, each naming its setting.
func (s *securityFlags) resolve(fs *flag.FlagSet, getenv func(string) string) (kafkaSecurity, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, st := range s.strs {
		if v := getenv(st.env); v != "" && !given[st.flag] {
			*st.dst = v
		}
	}
	k := s.k
	var errs []error
	switch strings.ToLower(strings.TrimSpace(s.tls)) {
	case "", "false", "0", "no":
	case "true", "1", "yes":
		k.TLS = true
	default:
		errs = append(errs, fmt.Errorf("kafka-tls: %q is not true or false (--kafka-tls / %s)", s.tls, envKafkaTLS))
	}
	if k.CAFile != "" || k.CertFile != "" || k.KeyFile != "" || k.ServerName != "" {
		k.TLS = true
	}
	pw, err := secretFrom(getenv(envKafkaPassword), k.PasswordFile, "kafka-sasl-password-file", envKafkaPassword)
	if err != nil {
		errs = append(errs, err)
	}
	k.Password = pw
	errs = append(errs, k.validate())
	return k, errors.Join(errs...)
}

// secretFrom returns the value of an environment variable or, when file
// is set, the file's content without its trailing newline.
func secretFrom(envValue, file, fileSetting, env string) (string, error) {
	if file == "" {
		return envValue, nil
	}
	if envValue != "" {
		return "", fmt.Errorf("%s: set either %s or the file, not both", fileSetting, env)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", fileSetting, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (k kafkaSecurity) validate() error {
	var errs []error
	switch k.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		errs = append(errs, fmt.Errorf("kafka-sasl-mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (--kafka-sasl-mechanism / %s)", k.Mechanism, envKafkaMechanism))
	}
	if k.Mechanism != "" {
		if k.Username == "" {
			errs = append(errs, fmt.Errorf("kafka-sasl-username: missing; SASL %s needs it: set --kafka-sasl-username or %s", k.Mechanism, envKafkaUsername))
		}
		if k.Password == "" {
			errs = append(errs, fmt.Errorf("kafka-sasl-password: missing; SASL %s needs it: set %s or --kafka-sasl-password-file / %s", k.Mechanism, envKafkaPassword, envKafkaPasswordFile))
		}
	} else if k.Username != "" || k.Password != "" {
		errs = append(errs, fmt.Errorf("kafka-sasl-mechanism: missing; a SASL user or password is set: set --kafka-sasl-mechanism or %s", envKafkaMechanism))
	}
	if (k.CertFile == "") != (k.KeyFile == "") {
		errs = append(errs, fmt.Errorf("kafka-tls-cert-file, kafka-tls-key-file: set both or neither (%s, %s)", envKafkaCertFile, envKafkaKeyFile))
	}
	// The files are read by opts, when the command connects: a mounted
	// Secret need not exist where the configuration is only checked.
	return errors.Join(errs...)
}

func (k kafkaSecurity) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.ServerName}
	if k.CAFile != "" {
		pool, err := loadCAs(k.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka-tls-ca-file: %w (--kafka-tls-ca-file / %s)", err, envKafkaCAFile)
		}
		cfg.RootCAs = pool
	}
	if k.CertFile != "" && k.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(k.CertFile, k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka-tls-cert-file, kafka-tls-key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// opts returns the kgo options for TLS and SASL, reading the CA and
// client certificate files.
func (k kafkaSecurity) opts() ([]kgo.Opt, error) {
	var out []kgo.Opt
	if k.TLS {
		cfg, err := k.tlsConfig()
		if err != nil {
			return nil, err
		}
		out = append(out, kgo.DialTLSConfig(cfg))
	}
	var m sasl.Mechanism
	switch k.Mechanism {
	case "PLAIN":
		m = plain.Auth{User: k.Username, Pass: k.Password}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: k.Username, Pass: k.Password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: k.Username, Pass: k.Password}.AsSha512Mechanism()
	}
	if m != nil {
		out = append(out, kgo.SASL(m))
	}
	return out, nil
}

// checkKafka asks the brokers for metadata within timeout, so that a wrong
// password or an untrusted certificate stops the start-up with one clear
// error instead of a retry loop.
func checkKafka(ctx context.Context, cl *kgo.Client, seeds []string, k kafkaSecurity, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err == nil {
		return nil
	}
	return classifyKafka(err, seeds, k)
}

func classifyKafka(err error, seeds []string, k kafkaSecurity) error {
	at := strings.Join(seeds, ",")
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr x509.CertificateInvalidError
	var verifyErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var eofErr *kgo.ErrFirstReadEOF
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("kafka SASL %s authentication as %q failed at %s: %w; check kafka-sasl-username / %s and the password (%s or %s)",
			k.Mechanism, k.Username, at, err, envKafkaUsername, envKafkaPassword, envKafkaPasswordFile)
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr), errors.As(err, &verifyErr):
		return fmt.Errorf("kafka TLS: the broker certificate at %s is not trusted: %w; check kafka-tls-ca-file / %s (and kafka-tls-server-name / %s)",
			at, err, envKafkaCAFile, envKafkaServerName)
	case errors.As(err, &recordErr):
		return fmt.Errorf("kafka TLS: %s did not answer TLS: %w; the listener is plaintext: unset kafka-tls / %s, or use the TLS listener's port", at, err, envKafkaTLS)
	case strings.Contains(err.Error(), "is this a plaintext connection speaking to a tls endpoint"):
		return fmt.Errorf("kafka: %s is a TLS listener, but TLS is off: %w; set kafka-tls / %s=true (and kafka-tls-ca-file / %s)", at, err, envKafkaTLS, envKafkaCAFile)
	case errors.As(err, &eofErr):
		return fmt.Errorf("kafka: %s closed the connection at once: %w; the listener probably expects TLS (kafka-tls / %s) or SASL (kafka-sasl-mechanism / %s) that is not configured",
			at, err, envKafkaTLS, envKafkaMechanism)
	}
	return fmt.Errorf("cannot reach Kafka at %s: %w; check --brokers / SHOPSTREAM_BROKERS and that the brokers are up", at, err)
}

// redisConfig is how shopstream connects to Redis. The URL forms:
//
//	redis://[user:password@]host:port[/db]          one server
//	rediss://...                                    the same over TLS
//	redis://[user:password@]h1:port,h2:port         Redis Cluster (seed nodes)
//	redis+cluster://[user:password@]host:port       Redis Cluster from one seed
//	redis+sentinel://[user:password@]s1:26379,s2:26379[/db]?master=NAME
//	                                                Sentinel; user and password are the master's
//
// Each has a TLS variant (rediss, rediss+cluster, rediss+sentinel). A
// password in the environment (SHOPSTREAM_REDIS_PASSWORD or the file)
// overrides the URL's.
type redisConfig struct {
	URL          string
	CAFile       string
	PasswordFile string
}

func (r *redisConfig) register(fs *flag.FlagSet) []setting {
	st := []setting{
		{"redis-tls-ca-file", envRedisCAFile, "PEM file of the CAs that sign the Redis server certificate (rediss://; default: the system roots)", &r.CAFile},
		{"redis-password-file", envRedisPasswordFile, "file holding the Redis password (or set " + envRedisPassword + "; or in the URL)", &r.PasswordFile},
	}
	for _, s := range st {
		fs.StringVar(s.dst, s.flag, "", s.usage+" (env "+s.env+")")
	}
	return st
}

// redisOptions parses the URL and the secrets. Its errors never quote the
// URL, which may hold a password.
func (r redisConfig) options(getenv func(string) string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, errors.New("redis-url: not a valid URL (redis://[user:password@]host:port/db; see README, Security)")
	}
	o := &redis.UniversalOptions{}
	var tlsOn bool
	switch u.Scheme {
	case "redis":
	case "rediss":
		tlsOn = true
	case "redis+cluster":
		o.IsClusterMode = true
	case "rediss+cluster":
		o.IsClusterMode, tlsOn = true, true
	case "redis+sentinel", "rediss+sentinel":
		tlsOn = u.Scheme == "rediss+sentinel"
		o.MasterName = u.Query().Get("master")
		if o.MasterName == "" {
			return nil, errors.New("redis-url: a redis+sentinel:// URL needs ?master=NAME")
		}
	default:
		return nil, fmt.Errorf("redis-url: scheme %q: must be a redis:// or rediss:// URL (or redis+cluster://, redis+sentinel://, and their rediss+ forms)", u.Scheme)
	}
	var errs []error
	for _, h := range strings.Split(u.Host, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "6379")
		}
		o.Addrs = append(o.Addrs, h)
	}
	if len(o.Addrs) == 0 {
		errs = append(errs, errors.New("redis-url: no host"))
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			errs = append(errs, errors.New("redis-url: the path must be a database number (/0)"))
		}
		o.DB = db
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if v := getenv(envRedisUsername); v != "" {
		o.Username = v
	}
	pw, err := secretFrom(getenv(envRedisPassword), r.PasswordFile, "redis-password-file", envRedisPassword)
	if err != nil {
		errs = append(errs, err)
	} else if pw != "" {
		o.Password = pw
	}
	if r.CAFile != "" && !tlsOn {
		errs = append(errs, fmt.Errorf("redis-tls-ca-file: set, but redis-url is not rediss://; use rediss:// for TLS (%s)", envRedisCAFile))
	}
	if tlsOn {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if r.CAFile != "" {
			pool, err := loadCAs(r.CAFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("redis-tls-ca-file: %w (--redis-tls-ca-file / %s)", err, envRedisCAFile))
			}
			cfg.RootCAs = pool
		}
		// ServerName stays empty: crypto/tls then verifies each node
		// against the host it dials, right for Cluster and Sentinel too.
		o.TLSConfig = cfg
	}
	return o, errors.Join(errs...)
}

// checkRedis sends one PING within timeout and explains an auth or TLS
// failure by the setting to fix.
func checkRedis(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "invalid username-password"):
		return fmt.Errorf("redis authentication failed: %w; check the user and password in redis-url / SHOPSTREAM_REDIS_URL, or %s / %s", err, envRedisPassword, envRedisPasswordFile)
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("redis: the ACL user may not run the commands shopstream needs: %w; grant +@read +@write +@scripting +ping on its keys", err)
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &verifyErr):
		return fmt.Errorf("redis TLS: the server certificate is not trusted: %w; check redis-tls-ca-file / %s", err, envRedisCAFile)
	case errors.As(err, &recordErr):
		return fmt.Errorf("redis TLS: the server did not answer TLS: %w; use redis:// for a plaintext server", err)
	}
	return fmt.Errorf("cannot reach Redis: %w; check redis-url / SHOPSTREAM_REDIS_URL", err)
}
