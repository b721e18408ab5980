// Package redistest starts a real redis-server for tests, on a free loopback
// port, with persistence disabled. A Server can be stopped, killed and
// started again on the same port, so tests can simulate a Redis outage and
// its recovery. StartCluster starts a Redis Cluster of several masters.
//
// redis-server must be on PATH (Debian: apt-get install -y redis-server).
// A missing binary fails the test; it is never skipped.
package redistest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testcert"
)

const (
	// readyTimeout bounds how long Start waits for PING to answer.
	readyTimeout = 15 * time.Second
	// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// portAttempts is how many free ports Start tries when another process
	// grabs the chosen port between choosing it and redis binding it.
	portAttempts = 5
)

// Server is a redis-server child process bound to 127.0.0.1. Its methods must
// be called from the test goroutine, like testing.TB's own methods: Start and
// Restart fail the test when redis-server does not come up.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	opts Options
	tls  *tls.Config // for the readiness check; nil without TLS
	ca   string      // CA file, with TLS
	bus  int         // cluster bus port of a cluster node; 0 otherwise

	mu     sync.Mutex
	proc   *process // nil while stopped
	starts int      // numbers the log files
}

// process is one run of redis-server.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once cmd.Wait has returned
	logPath string
}

// Start starts a redis-server on a free port of 127.0.0.1, waits until it
// answers PING and registers a cleanup that kills it. The data directory is a
// fresh tb.TempDir(); RDB snapshots and the AOF are disabled, so every start
// begins empty.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// Options configure StartWith.
type Options struct {
	// TLS serves TLS only (--tls-port, no plaintext port) with a
	// certificate for 127.0.0.1 issued by a CA generated for the server;
	// CAFile returns that CA. Clients need no certificate.
	TLS bool
	// Users are ACL users (name → password) allowed every command and key.
	// When set, the default user is disabled: every client must log in.
	Users map[string]string

	// clusterNode starts the server with cluster support on, owning no
	// slot yet; StartCluster joins such servers into a cluster.
	clusterNode bool
}

// StartWith is Start with TLS and ACL users.
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Launch(tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.Kill)
	return s
}

// Launch starts a redis-server like StartWith, for code without a
// testing.TB (the benchmark harness): dir holds its files, errors are
// returned, and the caller stops it with Stop or Kill. Start and Restart
// are for servers from Start and StartWith only.
func Launch(dir string, opts Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (%v); install Debian's redis-server package: apt-get install -y redis-server", err)
	}
	s := &Server{bin: bin, dir: dir, opts: opts}
	if opts.TLS {
		ca, err := testcert.NewCA("redistest CA")
		if err != nil {
			return nil, err
		}
		files, err := ca.WriteFiles(s.dir, "127.0.0.1", "localhost")
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.PEM)
		s.ca = files.CA
		s.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		s.port = port
		if opts.clusterNode {
			if s.bus, err = freePort(); err != nil {
				return nil, fmt.Errorf("pick a free port: %w", err)
			}
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// Addr returns the server's host:port, for example "127.0.0.1:6399". It stays
// the same across Stop and Start.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns a redis:// URL for database 0, for example
// "redis://127.0.0.1:6399/0"; rediss:// with TLS. It holds no user.
func (s *Server) URL() string {
	if s.opts.TLS {
		return "rediss://" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// CAFile is the PEM file of the CA that signed the server's certificate
// ("" without TLS).
func (s *Server) CAFile() string { return s.ca }

// Start starts redis-server again on the same port, with empty data, and waits
// until it answers PING. It does nothing if the server is running.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("redistest: %v", err)
	}
}

// Restart stops the server (SIGTERM) and starts it again on the same port,
// with empty data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.Start()
}

// Stop sends SIGTERM and waits for the process to exit; if it has not exited
// after 10 seconds it is killed. Clients see connection errors until Start.
// Stop does nothing if the server is not running.
func (s *Server) Stop() {
	s.halt(syscall.SIGTERM)
}

// Kill sends SIGKILL and waits for the process to exit, simulating a crash.
// Kill does nothing if the server is not running.
func (s *Server) Kill() {
	s.halt(syscall.SIGKILL)
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

func (s *Server) halt(sig syscall.Signal) {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig) // fails only if it has exited already
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// start launches redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		select {
		case <-s.proc.done: // exited by itself: start a new one
			s.proc = nil
		default:
			return nil
		}
	}
	s.starts++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.starts))
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create log file: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor

	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	}
	if s.opts.TLS {
		args = append(args[:0:0], "--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", filepath.Join(s.dir, "server.pem"),
			"--tls-key-file", filepath.Join(s.dir, "server-key.pem"),
			"--tls-ca-cert-file", s.ca,
			"--tls-auth-clients", "no")
		args = append(args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.dir)
	}
	if s.opts.clusterNode {
		// The bus port is chosen like the client port: the default,
		// port+10000, may be taken or beyond 65535.
		args = append(args, "--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(s.bus),
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "5000")
	}
	if len(s.opts.Users) > 0 {
		for user, pw := range s.opts.Users {
			args = append(args, "--user", user, "on", ">"+pw, "~*", "&*", "+@all")
		}
		args = append(args, "--user", "default", "off")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = logFile // an *os.File: no copying goroutines
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() { // owned by p: ends when the child exits; halt waits for it
		_ = cmd.Wait()
		close(p.done)
	}()

	if err := waitReady(s.dialer(), p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redis-server on %s: %w\n%s", s.Addr(), err, tail(logPath))
	}
	s.proc = p
	return nil
}

// dialer returns a function that connects (over TLS when set) and logs in
// as one of the ACL users.
func (s *Server) dialer() func() (net.Conn, string, error) {
	var login string
	for user, pw := range s.opts.Users {
		login = fmt.Sprintf("AUTH %s %s\r\n", user, pw)
		break
	}
	addr, cfg := s.Addr(), s.tls
	return func() (net.Conn, string, error) {
		d := &net.Dialer{Timeout: time.Second}
		if cfg != nil {
			c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
			return c, login, err
		}
		c, err := d.Dial("tcp", addr)
		return c, login, err
	}
}

// waitReady polls PING until it answers +PONG, the process exits, or
// readyTimeout passes.
func waitReady(dial func() (net.Conn, string, error), p *process) error {
	deadline := time.Now().Add(readyTimeout)
	backoff := 2 * time.Millisecond
	for {
		err := ping(dial)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-p.done:
			timer.Stop()
			return errors.New("exited during startup")
		case <-timer.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// ping sends one inline PING and expects +PONG.
func ping(dial func() (net.Conn, string, error)) error {
	conn, login, err := dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte(login + "PING\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	if login != "" {
		if line, err := r.ReadString('\n'); err != nil {
			return err
		} else if line = strings.TrimSpace(line); line != "+OK" {
			return fmt.Errorf("AUTH answered %q", line)
		}
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before redis-server binds it; Start then retries with a new port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of the log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}
