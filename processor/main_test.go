package processor

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a kgo
// client that was not closed, a group worker that did not stop).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
