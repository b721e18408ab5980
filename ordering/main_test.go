package ordering_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a Redis
// client or server that was not closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
