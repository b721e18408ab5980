package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// adminFlags are the flags every operations command (lag, replay, dlq,
// topics) shares.
type adminFlags struct {
	brokers string
	timeout time.Duration
	sec     securityFlags
}

// register adds --brokers (env SHOPSTREAM_BROKERS) and --timeout to fs.
// The environment is read after parsing (see resolve), so usage never shows
// its values.
func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.brokers, "brokers", "", "comma-separated seed brokers (env SHOPSTREAM_BROKERS)")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "give up on Kafka after this long")
	a.sec.register(fs)
}

// client validates the flags (after fs.Parse) and returns a Kafka client
// that has answered a metadata request, so that unreachable brokers are
// reported once, clearly, before any real work.
func (a *adminFlags) client(ctx context.Context, fs *flag.FlagSet, getenv func(string) string, opts ...kgo.Opt) (*kgo.Client, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "brokers" })
	if !given {
		a.brokers = getenv("SHOPSTREAM_BROKERS")
	}
	seeds := splitList(a.brokers)
	if len(seeds) == 0 {
		return nil, &exitError{code: 2, err: errors.New("brokers: missing; set --brokers or SHOPSTREAM_BROKERS (host:port,...)")}
	}
	for _, b := range seeds {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("brokers: %q is not host:port", b)}
		}
	}
	sec, err := a.sec.resolve(fs, getenv)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	secOpts, err := sec.opts()
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, secOpts...)
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("kafka client: %w", err)}
	}
	if err := checkKafka(ctx, cl, seeds, sec, a.timeout); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}
