package mongots

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// DefaultDatabase is the database Options.Database defaults to.
const DefaultDatabase = "factorywire"

// Default chunk bounds of Write (Options.MaxBatchDocs, MaxBatchBytes).
const (
	DefaultMaxBatchDocs  = 1000
	DefaultMaxBatchBytes = 8 << 20
)

// Errors. Each error Store returns for a bad argument wraps one of these;
// a collection of the wrong shape is a *CollectionError wrapping
// ErrNotTimeSeries or ErrShape.
var (
	// ErrNotTimeSeries: Ensure found a collection that is not time-series
	// (a regular collection or a view) where the topic's time-series
	// collection belongs.
	ErrNotTimeSeries = errors.New("mongots: collection is not time-series")
	// ErrShape: Ensure found a time-series collection whose timeField,
	// metaField or bucketing differs from the configured ones, or (with
	// Options.Shard) a collection sharded on another key.
	ErrShape = errors.New("mongots: collection has a different shape")
	// ErrNotMongos: Options.Shard is set and the server is not a mongos
	// of MongoDB 6.0 or later (a replica set, a standalone server, the
	// FerretDB stand-in). It comes in a *CommandError with Code 0.
	ErrNotMongos = errors.New("mongots: sharding needs a mongos")
	// ErrInvalidSpec: a CollectionSpec that Ensure refuses.
	ErrInvalidSpec = errors.New("mongots: invalid collection spec")
	// ErrInvalidArgument: a bad argument to a query or an offsets call.
	ErrInvalidArgument = errors.New("mongots: invalid argument")
	// ErrInvalidDoc: a Doc that Write refuses before sending it (DocError
	// with Code 0).
	ErrInvalidDoc = errors.New("mongots: invalid document")
	// ErrTooLarge: a Doc whose BSON exceeds MaxDocBytes, which Write
	// refuses before sending it (DocError with Code 0).
	ErrTooLarge = errors.New("mongots: document too large")
	// ErrCorruptDoc: a stored document that does not have the shape Write
	// gives documents (written by something else).
	ErrCorruptDoc = errors.New("mongots: stored document has an unexpected shape")
)

// CollectionError says why Ensure refuses an existing collection: what
// differs and how to fix it. It wraps ErrNotTimeSeries or ErrShape.
type CollectionError struct {
	Namespace string // database.collection
	Problem   string // what differs, and the fix
	Err       error  // ErrNotTimeSeries or ErrShape
}

func (e *CollectionError) Error() string {
	return fmt.Sprintf("mongots: collection %s: %s", e.Namespace, e.Problem)
}

// Unwrap returns ErrNotTimeSeries or ErrShape.
func (e *CollectionError) Unwrap() error { return e.Err }

// Options configure a Store.
type Options struct {
	// Database holds every topic's collection and the offsets checkpoint.
	// Default "factorywire" (DefaultDatabase).
	Database string

	// TimeSeries is true for MongoDB: Ensure creates time-series
	// collections with TTL. DefaultOptions sets it.
	//
	// False is the stand-in mode, ONLY for FerretDB in tests and the demo,
	// which has no time-series collections: Ensure creates plain
	// collections with the same indexes and no TTL (ExpireAfter is ignored,
	// so nothing ever expires), and logs a warning each time. Documents,
	// writes and queries are the same in both modes. Never run it against
	// a production MongoDB.
	TimeSeries bool

	// MaxBatchDocs bounds the documents of one insert command of Write.
	// Default 1000 (DefaultMaxBatchDocs).
	MaxBatchDocs int

	// MaxBatchBytes bounds the BSON bytes of the documents of one insert
	// command of Write; a larger document goes alone. Default 8 MiB
	// (DefaultMaxBatchBytes).
	MaxBatchBytes int

	// WriteConcern is the write concern of every write: the inserts of
	// Write, the checkpoint and the device status. Nil is majority, which
	// no failover can undo: a write acknowledged by only the primary (w: 1)
	// is rolled back if that primary fails before a secondary copied it,
	// and the sink, told it was stored, never writes it again.
	//
	// The reads that decide what is already stored (UnstoredSamples,
	// LastSeqs, the checkpoint, the device status) use read concern
	// majority with write concern majority, so that they never see a
	// write a failover may still undo; with any other write concern they
	// use read concern local, because a majority read could miss a
	// document acknowledged but not yet replicated, and the sink would
	// write it a second time.
	WriteConcern *writeconcern.WriteConcern

	// Shard shards every collection Ensure makes ready, through the
	// mongos routers of a sharded cluster of MongoDB 6.0 or later: each
	// topic's time-series collection on {meta.device: "hashed"}, and
	// device_status (and the rollups, through EnsureRollups) on {_id:
	// "hashed"}; sink_offsets stays unsharded. Ensure first asks the server {hello: 1} and refuses
	// anything but a mongos (ErrNotMongos), before it creates anything.
	// Default false. See shard.go for the commands and their reasons, and
	// docs/OPERATIONS.md, "Past one replica set".
	Shard bool

	// Logger receives Ensure's changes (a TTL changed by collMod, a legacy
	// index dropped) and the stand-in warning. Nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns the options for a real MongoDB: database
// "factorywire", time-series collections, the default chunk bounds.
func DefaultOptions() Options {
	return Options{
		Database:      DefaultDatabase,
		TimeSeries:    true,
		MaxBatchDocs:  DefaultMaxBatchDocs,
		MaxBatchBytes: DefaultMaxBatchBytes,
	}
}

// Store reads and writes factorywire's collections in one database. It is
// safe for concurrent use, as the mongo.Client is; it does not own the
// client, which the caller connects and disconnects.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	opts   Options
	log    *slog.Logger
	// coll are the options of every collection handle: the write concern
	// and the matching read concern (Options.WriteConcern).
	coll *options.CollectionOptionsBuilder
	// noFirst is set once the server refused $first ($group), as the
	// FerretDB stand-in does: LastSeqs then reads the devices' samples.
	noFirst atomic.Bool
	// shard caches what sharding learnt (Options.Shard).
	shard shardState
}

// New returns a Store on client. Zero fields of opts take their defaults,
// except TimeSeries: the zero Options is the stand-in mode, so start from
// DefaultOptions.
func New(client *mongo.Client, opts Options) *Store {
	if opts.Database == "" {
		opts.Database = DefaultDatabase
	}
	if opts.MaxBatchDocs <= 0 {
		opts.MaxBatchDocs = DefaultMaxBatchDocs
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wc, rc := opts.WriteConcern, readconcern.Majority()
	if wc == nil {
		wc = writeconcern.Majority()
	}
	if wc.W != "majority" {
		rc = readconcern.Local()
	}
	opts.WriteConcern = wc
	return &Store{client: client, db: client.Database(opts.Database), opts: opts, log: log,
		coll: options.Collection().SetWriteConcern(wc).SetReadConcern(rc)}
}

// collection returns a handle of the collection name with the Store's
// write and read concerns.
func (s *Store) collection(name string) *mongo.Collection {
	return s.db.Collection(name, s.coll)
}

// Database returns the database the Store uses.
func (s *Store) Database() *mongo.Database { return s.db }

// namespace returns database.collection, as errors name it.
func (s *Store) namespace(coll string) string { return s.opts.Database + "." + coll }

func checkCollection(coll string) error {
	if coll == "" {
		return fmt.Errorf("%w: empty collection name", ErrInvalidArgument)
	}
	return nil
}
