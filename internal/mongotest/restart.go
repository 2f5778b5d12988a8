package mongotest

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// bindRetry bounds how long StartAt retries binding an address that a
// server stopped a moment ago.
const bindRetry = 15 * time.Second

// StartAt runs an embedded FerretDB with its SQLite files in dir, listening
// on addr ("127.0.0.1:0" for a new port), and returns its mongodb:// URI
// and a function that stops it and waits until it has stopped. Stopping
// and calling StartAt again with the same dir and the URI's address is a
// MongoDB outage: clients see connection errors meanwhile, and the data
// survives it (SQLite keeps it in dir). StartAt retries the bind for a
// while, since the address was just released. stop is idempotent, and the
// test stops a server still running when it ends; dir is the caller's to
// create and remove (t.TempDir(), created before StartAt, is removed after
// the server stopped).
//
// FerretDB lets connections open at a stop finish for a few seconds before
// it closes them, so stop returns a few seconds after it is called when
// clients are connected.
func StartAt(t testing.TB, dir, addr string) (uri string, stop func()) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		// Errors only: its warnings, one per refused command, would
		// drown the test's own output.
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	deadline := time.Now().Add(bindRetry)
	var f *ferretdb.FerretDB
	for {
		var err error
		newMu.Lock()
		f, err = ferretdb.New(&ferretdb.Config{
			Listener:  ferretdb.ListenerConfig{TCP: addr},
			Logger:    logger,
			Handler:   "sqlite",
			SQLiteURL: "file:" + dir + "/",
		})
		newMu.Unlock()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mongotest: start FerretDB on %s over %s: %v", addr, dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx) // always nil
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(stopTimeout):
				t.Errorf("mongotest: FerretDB on %s did not stop within %v", addr, stopTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return f.MongoDBURI(), stop
}
