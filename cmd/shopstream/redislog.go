package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// redisLogger receives go-redis' own log lines (a connection pool that
// cannot dial, Sentinel and Cluster topology changes, recovered panics),
// which go-redis otherwise prints to stderr as plain text, and writes each
// as one JSON event of the service's log: level warn, "component":"go-redis",
// with credentials masked (see redactCredentials) and, like every log line,
// e-mail addresses.
type redisLogger struct {
	log     zerolog.Logger
	secrets []string
}

// Printf implements go-redis' logging interface (redis.SetLogger).
func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	msg := redactCredentials(fmt.Sprintf(format, v...), l.secrets)
	l.log.Warn().Str("component", "go-redis").Msg(strings.TrimSpace(msg))
}

// installRedisLogger routes go-redis' logging, which is process-wide, to a
// JSON logger on stderr for the command args[0], at the level its
// --log-level flag or SHOPSTREAM_LOG_LEVEL gives (default info; error for
// demo, whose logs are quiet by default). The Redis passwords given in the
// environment are masked besides every URL's user information.
func installRedisLogger(stderr io.Writer, args []string, getenv func(string) string) {
	level := "info"
	if len(args) > 0 && args[0] == "demo" {
		level = "error"
	}
	if v := getenv("SHOPSTREAM_LOG_LEVEL"); v != "" {
		level = v
	}
	if v, ok := flagValue(args, "log-level"); ok {
		level = v
	}
	secrets := []string{getenv(envRedisPassword)}
	if u, err := url.Parse(getenv("SHOPSTREAM_REDIS_URL")); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		secrets = append(secrets, pw)
	}
	redis.SetLogger(redisLogger{log: newLogger(stderr, level), secrets: secrets})
}

// flagValue returns the value of flag name in args as the flag package
// reads it (-name v, --name v, -name=v, --name=v), the last one winning,
// and whether it is there. A "--" ends the flags.
func flagValue(args []string, name string) (string, bool) {
	var val string
	var found bool
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		f := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if f == a {
			continue // not a flag
		}
		if k, v, ok := strings.Cut(f, "="); ok && k == name {
			val, found = v, true
		} else if f == name && i+1 < len(args) {
			val, found = args[i+1], true
			i++
		}
	}
	return val, found
}
