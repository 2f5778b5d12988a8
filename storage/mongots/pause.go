package mongots

import "context"

type pauseKey struct{}

// WithPause returns a copy of ctx under which UpdateStatus, SaveRollups
// and the other writes that send their statements in several bulk
// commands call pause before each command, and stop with its error when
// it returns one. It lets a writer of lesser urgency give way between
// its commands: the sink writes the device status and rollups beside its
// batches and pauses them while a batch's samples are written, since
// MongoDB's stand-in (SQLite) takes one writer at a time and a writer
// that finds the lock taken backs off for up to 100 ms at a time.
func WithPause(ctx context.Context, pause func(context.Context) error) context.Context {
	return context.WithValue(ctx, pauseKey{}, pause)
}

// pauseBefore calls the pause of ctx (WithPause), if any.
func pauseBefore(ctx context.Context) error {
	if pause, ok := ctx.Value(pauseKey{}).(func(context.Context) error); ok {
		return pause(ctx)
	}
	return nil
}
