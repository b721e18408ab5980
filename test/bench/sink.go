package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopstream/shopstream/handlers"
)

// sink is a real HTTP server on loopback standing in for a slow downstream
// (Magento, a webhook): it answers every request after latency, and records
// the (SKU, version) arrival order and the arrival times. It accepts Magento
// source-item calls and webhook posts alike: the SKU is the first "sku"
// field of the body, the version the X-Shopstream-Event-Version header.
type sink struct {
	latency time.Duration
	srv     *http.Server
	url     string
	served  chan struct{}  // closed when Serve has returned
	active  sync.WaitGroup // requests being served

	conns atomic.Int64 // TCP connections accepted

	mu         sync.Mutex
	closed     bool
	last       map[string]int64 // last version that arrived, per SKU
	arrivals   []int64          // arrival times, unix ns
	outOfOrder int              // arrivals with a version below the SKU's last
	duplicates int              // arrivals with the SKU's last version again
	unparsed   int              // requests without a SKU or version
	example    string           // the first out-of-order arrival
}

func startSink(latency time.Duration) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{latency: latency, last: make(map[string]int64, skuCount), served: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	s.url = "http://" + ln.Addr().String()
	go func() { // owned by s: ends when Close shuts the server down
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

var skuField = []byte(`"sku":"`)

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UnixNano()
	body, _ := io.ReadAll(r.Body)
	sku := ""
	if i := bytes.Index(body, skuField); i >= 0 {
		rest := body[i+len(skuField):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			sku = string(rest[:j])
		}
	}
	v, err := strconv.ParseInt(r.Header.Get(handlers.HeaderEventVersion), 10, 64)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "sink closed", http.StatusServiceUnavailable)
		return
	}
	s.active.Add(1) // under mu, before Close sets closed: never once its Wait began
	defer s.active.Done()
	s.arrivals = append(s.arrivals, now)
	switch prev, seen := s.last[sku]; {
	case sku == "" || err != nil:
		s.unparsed++
	case seen && v < prev:
		s.outOfOrder++
		if s.example == "" {
			s.example = fmt.Sprintf("%s: version %d arrived after %d", sku, v, prev)
		}
	case seen && v == prev:
		s.duplicates++
	default:
		s.last[sku] = v
	}
	s.mu.Unlock()
	time.Sleep(s.latency)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("[]")) // Magento's "no item rejected"
}

// Close stops the server and waits for the requests in progress. It closes
// connections at once: Shutdown would wait 5 s for any connection the
// client dialled but never used (net/http treats those as active).
func (s *sink) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	_ = s.srv.Close()
	<-s.served
	s.active.Wait()
}

// calls is the number of requests received.
func (s *sink) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrivals)
}

// summary counts what arrived, for the notes.
func (s *sink) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d calls for %d SKUs, %d out of order, %d duplicates, over %d TCP connections",
		len(s.arrivals), len(s.last), s.outOfOrder, s.duplicates, s.conns.Load())
}

// orderErr reports SKUs whose versions arrived out of order, and requests
// the sink could not attribute to a SKU and version.
func (s *sink) orderErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.outOfOrder > 0:
		return fmt.Errorf("%d arrivals out of per-SKU order (first: %s)", s.outOfOrder, s.example)
	case s.unparsed > 0:
		return fmt.Errorf("%d requests without a SKU or version", s.unparsed)
	}
	return nil
}

// finalStateErr compares the last version that arrived per SKU with the
// highest version produced.
func (s *sink) finalStateErr(ds *dataset) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wrong, example := 0, ""
	for k, want := range ds.maxVersion {
		if want == 0 {
			continue
		}
		if got := s.last[skuName(k)]; got != want {
			wrong++
			if example == "" {
				example = fmt.Sprintf("%s ends at version %d, produced up to %d", skuName(k), got, want)
			}
		}
	}
	if wrong > 0 {
		return fmt.Errorf("%d SKUs not at their highest produced version (first: %s)", wrong, example)
	}
	return nil
}

// maxWindow returns the most requests that arrived within any window of
// length w, and the span from the first to the last arrival.
func (s *sink) maxWindow(w time.Duration) (most int, span time.Duration) {
	s.mu.Lock()
	ts := slices.Clone(s.arrivals)
	s.mu.Unlock()
	if len(ts) == 0 {
		return 0, 0
	}
	slices.Sort(ts)
	lo := 0
	for hi := range ts {
		for ts[hi]-ts[lo] >= int64(w) {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	return most, time.Duration(ts[len(ts)-1] - ts[0])
}
