package outbox

import "context"

// CleanupNow runs the relay's cleanup once.
func (o *Outbox) CleanupNow(ctx context.Context) error { return o.cleanup(ctx) }

// SetCleanupChunk sets how many rows one cleanup statement deletes, until
// the test ends (through the returned restore).
func SetCleanupChunk(n int64) (restore func()) {
	old := cleanupChunk
	cleanupChunk = n
	return func() { cleanupChunk = old }
}
