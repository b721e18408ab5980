package realkafka

import (
	"encoding/base64"
	"testing"
)

// A cluster id never starts with '-', which kafka-storage format would take
// for an option (a CI run failed on it: one start in 64 did), and is 16
// bytes in base64url, as Kafka's own ids. 10,000 draws without the redraw
// would all avoid '-' with a probability below 1e-68.
func TestNewClusterID(t *testing.T) {
	seen := make(map[string]bool)
	for range 10000 {
		id := newClusterID()
		if id[0] == '-' {
			t.Fatalf("cluster id %q starts with '-'", id)
		}
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(b) != 16 {
			t.Fatalf("cluster id %q is not 16 bytes of base64url: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("cluster id %q drawn twice", id)
		}
		seen[id] = true
	}
}
