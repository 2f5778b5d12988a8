package mongotest

import (
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/standin"
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
	var srv *standin.Server
	for {
		var err error
		srv, err = standin.Start(standin.Config{Dir: dir, Listen: addr, Logger: logger})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mongotest: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := srv.Close(); err != nil {
				t.Errorf("mongotest: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv.URI(), stop
}
