// Package standin runs the embedded MongoDB stand-in: FerretDB 1.24 with
// its SQLite backend, speaking the MongoDB wire protocol in this process.
// The demo, `sink standin` and the tests (internal/mongotest) start it
// here.
//
// It is for trying factorywire and for tests, never for production: it
// has no time-series collections, no TTL, no collMod, no $first, $avg,
// $min, $max, $dateTrunc or $merge, no Decimal128, no authentication, and
// it enforces a unique _id where a time-series collection does not. A
// sink writing to it needs mongodb.time_series: false (mongots's stand-in
// mode); sink query latest and window fail on it, range and gaps work.
//
// FerretDB is built from third_party/ferretdb (go.mod's replace): the
// release with eight changes, so that finds, updates and deletes by _id use
// the _id index instead of reading the whole table (TestIDLookupsUseIndex),
// the _id is a column of its own, which that index is on, so that SQLite
// does not parse each document written to index it (TestIDColumn; a data
// directory of an earlier build is migrated when opened),
// a start on a busy address leaves nothing open (TestStartErrors), a
// non-unique index, which FerretDB's SQLite queries never read, is listed
// but not maintained on every write (TestSecondaryIndexes), inserts commit
// 1000 documents at a time, not 100, an ordered insert stops at its
// first duplicate (TestInsertBatches), and documents are encoded and
// decoded without reflection, to and from the release's bytes
// (TestFerretDBChanges runs that copy's own tests); its README.md says
// what and why.
//
//	srv, err := standin.Start(standin.Config{Dir: "/tmp/fw-standin"})
//	...
//	fmt.Println(srv.URI()) // mongodb://127.0.0.1:PORT/
//	defer srv.Close()
package standin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// DefaultListen is the address Config.Listen defaults to: loopback, any
// free port.
const DefaultListen = "127.0.0.1:0"

// stopTimeout bounds how long Close waits for FerretDB to stop. FerretDB
// gives connections still open at a stop a few seconds to finish.
const stopTimeout = 30 * time.Second

// newMu serialises ferretdb.New, which writes a package-level variable of
// FerretDB's (its version's package name).
var newMu sync.Mutex

// Config is where a stand-in keeps its files and listens.
type Config struct {
	// Dir holds the SQLite files, one per database; created (0755) if
	// missing. Data written survives a Close and a Start on the same Dir.
	// Required.
	Dir string
	// Listen is the TCP address to listen on, host:port (port 0: any free
	// port). Default 127.0.0.1:0 (DefaultListen). The stand-in has no
	// authentication and no TLS: whoever reaches the address reads, writes
	// and drops everything, so keep it on loopback.
	Listen string
	// Logger receives FerretDB's own logs. It logs each command it does
	// not implement as a warning (the driver's endSessions at every
	// disconnect), so give it an error-level logger unless debugging. Nil
	// discards them.
	Logger *slog.Logger
}

// Server is a running stand-in. Its methods are safe for concurrent use.
type Server struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start creates cfg.Dir if needed and runs FerretDB over it, listening on
// cfg.Listen, until Close. Its errors name the address and the directory.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("standin: no directory for the SQLite files")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("the MongoDB stand-in's directory: %w", err)
	}
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: cfg.Listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + cfg.Dir + "/",
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start the MongoDB stand-in (FerretDB) on %s over %s: %w", cfg.Listen, cfg.Dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx) // always nil
	}()
	// After Run has started, as FerretDB's documentation asks (v1.24
	// binds in New already).
	s.uri = f.MongoDBURI()
	return s, nil
}

// URI returns the stand-in's connection string, mongodb://host:port/.
func (s *Server) URI() string { return s.uri }

// Close stops the stand-in: it stops listening, gives open connections a
// few seconds to finish (disconnect clients first to stop at once), closes
// the SQLite files and returns once all that is done, or an error after
// 30 s. It is idempotent; later calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			s.closeErr = fmt.Errorf("the MongoDB stand-in at %s did not stop within %v", s.uri, stopTimeout)
		}
	})
	return s.closeErr
}
