package processor

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// Concurrent calls are merged into batches, and each caller gets the result
// at its own index.
func TestBatcherMergesAndRoutesResults(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	first := true
	b := newBatcher(500, func(_ context.Context, qs []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(qs))
		wait := first
		first = false
		mu.Unlock()
		if wait {
			<-release // hold the first batch so the others queue behind it
		}
		out := make([]int, len(qs))
		for i, q := range qs {
			out[i] = q * 10
		}
		return out, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { b.loop(ctx); close(loopDone) }()
	defer func() { cancel(); <-loopDone }()

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	r0 := make(chan int, 1)
	go func() { v, _ := b.do(ctx, 0); r0 <- v }()
	batches := func() int { mu.Lock(); defer mu.Unlock(); return len(sizes) }
	for batches() == 0 {
		runtime.Gosched() // wait until the first call is in its (held) batch
	}
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := b.do(ctx, i)
			if err != nil || v != i*10 {
				errs <- errors.New("wrong result")
			}
		}()
	}
	for len(b.reqs) < n {
		runtime.Gosched() // wait until every call is queued behind the held batch
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v := <-r0; v != 0 {
		t.Errorf("first call got %d", v)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[1] != n {
		t.Errorf("batch sizes %v, want [1 %d]: the queued calls must share one batch", sizes, n)
	}
}

// A store error reaches every caller of the batch; a caller whose context
// ends stops waiting; callers queued when the loop stops get errStopped.
func TestBatcherErrorsAndStop(t *testing.T) {
	boom := errors.New("redis down")
	b := newBatcher(10, func(context.Context, []string) ([]bool, error) { return nil, boom })
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { b.loop(ctx); close(loopDone) }()
	if _, err := b.do(context.Background(), "a"); !errors.Is(err, boom) {
		t.Errorf("got %v, want the store error", err)
	}
	cancel()
	<-loopDone
	b.reqs <- &pendingCall[string, bool]{q: "late", done: make(chan struct{})}
	late := <-b.reqs
	b.reqs <- late
	b.drain()
	<-late.done
	if !errors.Is(late.err, errStopped) {
		t.Errorf("queued call after stop got %v, want errStopped", late.err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := b.do(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller got %v", err)
	}
}
