package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// redisServer is a real redis-server child on a free loopback port with
// persistence off, started the way internal/redistest starts it for tests
// (which needs a testing.TB, so the harness has its own small launcher).
type redisServer struct {
	cmd  *exec.Cmd
	dir  string
	addr string
	done chan struct{} // closed once cmd.Wait has returned
}

func startRedis() (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (%v); install it: apt-get install -y redis-server", err)
	}
	dir, err := os.MkdirTemp("", "shopstream-bench-redis-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 { // another process may take the free port first
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s := &redisServer{dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
		s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "redis.log")
		s.cmd.SysProcAttr = sysProcAttr()
		if err := s.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		go func() { // owned by s: ends when the child exits; Close waits for it
			_ = s.cmd.Wait()
			close(s.done)
		}()
		if lastErr = s.waitReady(); lastErr == nil {
			return s, nil
		}
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("redis-server: %w", lastErr)
}

// Close stops the server (SIGTERM, then SIGKILL after 10 s) and removes its directory.
func (s *redisServer) Close() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(s.dir)
}

func (s *redisServer) waitReady() error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := ping(s.addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING on %s within 15s: %w", s.addr, err)
		}
		select {
		case <-s.done:
			return errors.New("exited during startup")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
