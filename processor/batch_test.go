package processor

import (
	"context"
	"errors"
	"runtime"
	"slices"
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
	b := newBatcher(500, 1, func(_ context.Context, qs []int) ([]int, error) {
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
	b := newBatcher(10, 1, func(context.Context, []string) ([]bool, error) { return nil, boom })
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { b.loop(ctx); close(loopDone) }()
	if _, err := b.do(context.Background(), "a"); !errors.Is(err, boom) {
		t.Errorf("got %v, want the store error", err)
	}
	cancel()
	<-loopDone
	b.reqs <- &pendingCall[string, bool]{qs: []string{"late"}, done: make(chan struct{})}
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

// A multi-item call stays together, is merged with others while they fit,
// and gets exactly its own results back; one larger than max runs alone.
func TestBatcherDoMany(t *testing.T) {
	var sizes []int
	b := newBatcher(4, 1, func(_ context.Context, qs []int) ([]int, error) {
		sizes = append(sizes, len(qs))
		out := make([]int, len(qs))
		for i, q := range qs {
			out[i] = q * 10
		}
		return out, nil
	})
	// Queue before the loop runs so that the merge is deterministic.
	calls := []*pendingCall[int, int]{
		{qs: []int{1, 2}, done: make(chan struct{})},
		{qs: []int{3}, done: make(chan struct{})},
		{qs: []int{4, 5}, done: make(chan struct{})}, // does not fit: next batch
		{qs: []int{6, 7, 8, 9, 10}, done: make(chan struct{})},
	}
	for _, c := range calls {
		b.reqs <- c
	}
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { b.loop(ctx); close(loopDone) }()
	for _, c := range calls {
		<-c.done
		if c.err != nil {
			t.Fatalf("call %v: %v", c.qs, c.err)
		}
		for i, q := range c.qs {
			if c.rs[i] != q*10 {
				t.Errorf("call %v: result %d is %d, want %d", c.qs, i, c.rs[i], q*10)
			}
		}
	}
	cancel()
	<-loopDone
	if want := []int{3, 2, 5}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
	if rs, err := b.doMany(context.Background(), nil); rs != nil || err != nil {
		t.Errorf("empty doMany = %v, %v", rs, err)
	}
}

// With inflight > 1, a batch runs while an earlier one is still waiting
// for the store: the second call completes although the first one's store
// call has not returned.
func TestBatcherRunsBatchesConcurrently(t *testing.T) {
	release := make(chan struct{})
	b := newBatcher(1, 2, func(_ context.Context, qs []int) ([]int, error) {
		if qs[0] == 1 {
			<-release // the first batch hangs until the second finished
		}
		return qs, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { b.loop(ctx); close(loopDone) }()
	first := make(chan error, 1)
	go func() { _, err := b.do(context.Background(), 1); first <- err }()
	if v, err := b.do(context.Background(), 2); err != nil || v != 2 {
		t.Fatalf("second call = %v, %v while the first batch is in flight", v, err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	cancel()
	<-loopDone
}
