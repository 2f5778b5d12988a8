// Package mongotest runs MongoDB for tests: an embedded FerretDB
// (v1.24, SQLite backend) that speaks the MongoDB wire protocol, a command
// monitor that records what the driver sends, and the real server named by
// MONGODB_URI for the behaviour FerretDB lacks.
//
// FerretDB is a stand-in, not MongoDB. It has no time-series collections,
// no TTL, no collMod, no $first, $avg, $min, $max, $dateTrunc or $merge, no
// Decimal128, and it enforces a unique _id where a time-series collection
// does not. A test of one of those behaviours asserts the exact command the
// driver sends (Monitor) and checks the server's answer in a test that runs
// only against real MongoDB (RealURI).
//
//	uri := mongotest.Start(t)           // FerretDB until t ends
//	var m mongotest.Monitor
//	client := mongotest.Connect(t, uri, &m)
//	... // use client
//	cmds := m.Commands("createIndexes") // every createIndexes sent, in order
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// URIEnv is the environment variable naming the real MongoDB server (6.0 or
// later) that RealURI returns.
const URIEnv = "MONGODB_URI"

// Start runs an embedded FerretDB (internal/standin) with its SQLite files
// in a t.TempDir(), listening on 127.0.0.1:0, until the test (and its
// cleanups registered later, such as Connect's, which disconnect clients
// first so that the server stops at once) ends, and returns its
// mongodb:// URI. Its logs
// are discarded unless the test runs with -v, when its errors go to
// standard error (its warnings, one per refused command, would drown the
// test's own output). Each call starts its own server; one starts in about
// a millisecond.
func Start(t testing.TB) string {
	t.Helper()
	uri, _ := StartAt(t, t.TempDir(), "127.0.0.1:0")
	return uri
}

// Connect returns a client of uri, recording its commands in m if m is not
// nil, and disconnects it when the test ends (before the server that Start
// started stops).
func Connect(t testing.TB, uri string, m *Monitor) *mongo.Client {
	t.Helper()
	opts := options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second)
	if m != nil {
		opts.SetMonitor(m.CommandMonitor())
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		t.Fatalf("mongotest: connect %s: %v", uri, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Disconnect(ctx); err != nil {
			t.Errorf("mongotest: disconnect: %v", err)
		}
	})
	return client
}

// RealURI returns the URI in MONGODB_URI, the real MongoDB server (6.0 or
// later, 8.0 recommended) that tests of behaviour FerretDB lacks run
// against, or skips the test saying what to set.
func RealURI(t testing.TB) string {
	t.Helper()
	uri := os.Getenv(URIEnv)
	if uri == "" {
		t.Skipf("needs a real MongoDB >= 6.0: set %s (e.g. %s=mongodb://127.0.0.1:27017) to run it; FerretDB cannot stand in for this test", URIEnv, URIEnv)
	}
	return uri
}

// DatabaseName returns a database name unique to this call, prefix_ and 16
// hexadecimal digits, so tests sharing one server do not see each other's
// collections.
func DatabaseName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	return prefix + "_" + hex.EncodeToString(b[:])
}

// DropDatabase drops db when the test ends, so a test against a real
// server leaves nothing behind.
func DropDatabase(t testing.TB, db *mongo.Database) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("mongotest: drop database %s: %v", db.Name(), err)
		}
	})
}

// Command is one command the driver sent.
type Command struct {
	Name     string   // the command name, such as "insert" or "aggregate"
	Database string   // the database it was sent to
	Doc      bson.Raw // the command document, as the driver monitors it
	// Reply is the server's reply when the command succeeded, nil when it
	// failed or has not answered yet.
	Reply bson.Raw
	id    int64 // the driver's request id, to match the reply
}

// Returned is the number of documents the reply carries in a cursor
// (cursor.firstBatch or cursor.nextBatch): what a find, aggregate or
// getMore read back. 0 for other replies.
func (c Command) Returned() int {
	for _, batch := range []string{"firstBatch", "nextBatch"} {
		if arr, ok := c.Reply.Lookup("cursor", batch).ArrayOK(); ok {
			vals, _ := arr.Values()
			return len(vals)
		}
	}
	return 0
}

// Monitor records the commands a client sends (CommandStartedEvent: the
// command name and document), including those the server then fails, and
// the replies of those that succeed. The
// zero Monitor is ready to use; it is safe for concurrent use.
type Monitor struct {
	mu   sync.Mutex
	cmds []Command
}

// CommandMonitor returns the monitor to pass to
// options.Client().SetMonitor.
func (m *Monitor) CommandMonitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			// The driver may reuse the buffer after the callback returns.
			doc := make(bson.Raw, len(e.Command))
			copy(doc, e.Command)
			m.mu.Lock()
			m.cmds = append(m.cmds, Command{Name: e.CommandName, Database: e.DatabaseName, Doc: doc, id: e.RequestID})
			m.mu.Unlock()
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			reply := make(bson.Raw, len(e.Reply))
			copy(reply, e.Reply)
			m.mu.Lock()
			defer m.mu.Unlock()
			for i := len(m.cmds) - 1; i >= 0; i-- {
				if m.cmds[i].id == e.RequestID {
					m.cmds[i].Reply = reply
					return
				}
			}
		},
	}
}

// Commands returns the documents of the commands named name recorded
// since the last Reset, in the order they were sent.
func (m *Monitor) Commands(name string) []bson.Raw {
	m.mu.Lock()
	defer m.mu.Unlock()
	var docs []bson.Raw
	for _, c := range m.cmds {
		if c.Name == name {
			docs = append(docs, c.Doc)
		}
	}
	return docs
}

// All returns every command recorded since the last Reset, in order.
func (m *Monitor) All() []Command {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Command(nil), m.cmds...)
}

// Reset forgets the commands recorded so far.
func (m *Monitor) Reset() {
	m.mu.Lock()
	m.cmds = nil
	m.mu.Unlock()
}
