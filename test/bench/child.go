package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/shopstream/shopstream/internal/devstack"
)

// The harness re-executes itself for the work that must not share its
// process: the Kafka broker (kfake keeps every record in memory, which would
// count against the processor's RSS in S6) and S6's drain runs (a fresh
// process per run gives a clean peak RSS). roleEnv selects the role; the
// child's settings travel as JSON in configEnv.
const (
	roleEnv   = "SHOPSTREAM_BENCH_ROLE"
	configEnv = "SHOPSTREAM_BENCH_CONFIG"
)

// child runs one role and returns the process exit code.
func child(role string) int {
	var err error
	switch role {
	case "broker":
		err = brokerMain()
	case "drain":
		err = drainMain()
	default:
		err = fmt.Errorf("unknown %s %q", roleEnv, role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		return 1
	}
	return 0
}

// spawned is a running child of the harness. It reads nothing from the
// child's stdout after the first line; the child exits when its stdin closes.
type spawned struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	done  chan struct{} // closed once cmd.Wait has returned
}

func spawn(role string, cfg any) (*spawned, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, configEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = sysProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// An os.Pipe rather than StdoutPipe: Wait must not race our reads.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	s := &spawned{cmd: cmd, stdin: stdin, out: bufio.NewReader(r), done: make(chan struct{})}
	go func() { // owned by s: ends when the child exits; stop waits for it
		_ = cmd.Wait()
		r.Close()
		close(s.done)
	}()
	return s, nil
}

// line reads one line of the child's stdout, within timeout.
func (s *spawned) line(ctx context.Context, timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() { // ends at the next newline or when the pipe closes (stop)
		l, err := s.out.ReadString('\n')
		got <- result{strings.TrimSpace(l), err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			return "", fmt.Errorf("child exited before answering: %w", r.err)
		}
		return r.line, nil
	case <-ctx.Done():
		s.stop()
		<-got
		return "", ctx.Err()
	case <-time.After(timeout):
		s.stop()
		<-got
		return "", fmt.Errorf("no answer from the child within %s", timeout)
	}
}

// stop closes the child's stdin, waits up to 10 s for it to exit, then kills it.
func (s *spawned) stop() {
	_ = s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// broker is a kfake cluster in a child process, spoken to over TCP.
type broker struct {
	proc  *spawned
	addrs []string
}

type brokerConfig struct {
	Topics     []string `json:"topics"`
	Partitions int      `json:"partitions"`
}

// startBroker starts kfake in a child with topics (and their DLQ topics) of
// six partitions each.
func startBroker(ctx context.Context, topicNames ...string) (*broker, error) {
	var all []string
	for _, t := range topicNames {
		all = append(all, t, t+".dlq")
	}
	p, err := spawn("broker", brokerConfig{Topics: all, Partitions: partitions})
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	l, err := p.line(ctx, 30*time.Second)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("start broker: %w", err)
	}
	return &broker{proc: p, addrs: strings.Split(l, ",")}, nil
}

func (b *broker) Close() { b.proc.stop() }

// cpu is the CPU time the broker's process has used so far (see procCPU).
func (b *broker) cpu() time.Duration { return procCPU(b.proc.cmd.Process.Pid) }

func brokerMain() error {
	var cfg brokerConfig
	if err := json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg); err != nil {
		return fmt.Errorf("%s: %w", configEnv, err)
	}
	k, err := devstack.StartKafka(context.Background(), devstack.KafkaOptions{Partitions: cfg.Partitions, Topics: cfg.Topics})
	if err != nil {
		return err
	}
	defer k.Close()
	fmt.Println(strings.Join(k.Addrs(), ","))
	// Serve until the harness closes our stdin (or dies).
	_, err = io.Copy(io.Discard, os.Stdin)
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}
