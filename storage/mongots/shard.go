package mongots

// Sharding (Options.Shard): what Ensure sends to a mongos, and why.
//
// Sources are the MongoDB manual (pages named by their path in the
// mongodb/docs repository) and, where the manual is silent, the server's
// source and Jira; docs/OPERATIONS.md, "Past one replica set", says the
// same for operators.

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Index names of the shard keys' supporting indexes: MongoDB's default
// names for their keys, so that one made by hand counts.
const (
	// IndexDeviceHashed is {meta.device: "hashed"}, which supports the
	// shard key of every topic's time-series collection.
	IndexDeviceHashed = "meta.device_hashed"
	// IndexIDHashed is {_id: "hashed"}, which supports the shard key of
	// the collections written by _id: device_status and the rollups.
	IndexIDHashed = "_id_hashed"
)

// minShardWireVersion is the maxWireVersion of MongoDB 6.0, the oldest
// server factorywire supports, and the oldest it shards on: time-series
// sharding itself came in 5.1 (and 5.0.6), and since 6.0 shardCollection
// needs no enableSharding first (manual reference/command/shardCollection.txt:
// "Starting in MongoDB 6.0, sharding a collection does not require you to
// first run the enableSharding command").
const minShardWireVersion = 17

// codeAlreadyInitialized is the answer to shardCollection on a collection
// sharded on another key (or collation, or uniqueness); a collection
// sharded on the same key is answered ok (the server's
// checkIfCollectionAlreadyShardedWithSameOptions).
const codeAlreadyInitialized = 23

// samplesShardKey returns the shard key of a topic's time-series
// collection: {meta.device: "hashed"}.
//
// The device, not time. The manual allows a time-series shard key on
// subfields of the metaField and, ranged and last, the timeField
// (core/timeseries/timeseries-limitations.txt, "Shard Key Fields"), but
// "Starting in MongoDB 8.0, use of the timeField as a shard key in a time
// series collection is deprecated"
// (includes/time-series/timeseries-timeField-deprecated.rst), and 8.0
// logs a warning about such collections every 12 hours (SERVER-88647,
// which gives the reason: chunk boundaries do not follow bucket
// boundaries, and "the meta field is providing enough cardinality to use
// as the sole shard key"). A shard key cannot be changed, only refined
// (fields added at its end), before 8.0.10, the first version that
// reshards a time-series collection
// (includes/time-series/reshard-timeseries.rst), so a key with ts chosen on
// 6.0 or 7.0 would still be deprecated after the upgrade. The key is
// therefore the same on every version, and no version decides it. Its
// cost: the balancer moves at least one device's buckets at a time, so a
// device whose history outgrows a chunk (128 MB by default) is a chunk
// the balancer cannot split.
//
// Hashed, not ranged. Every collection is created on the database's
// primary shard, and sharding an empty collection on a ranged key leaves
// it one chunk there; since the auto-splitter's removal (6.0.3) the
// balancer moves data only when shards differ by data size (SERVER-76405),
// so a new topic would write to one shard for a long while. On a hashed
// key an empty collection is split across every shard at once (the
// server's InitialSplitPolicy::calculateOptimizationStrategy: "the
// collection is empty with shard key having a hashed prefix"; two chunks
// per shard before 7.2, one from 7.2. For a time-series collection it is
// computed on the buckets' key, {meta.device: "hashed"} translated: read
// from the server's code, not run).
// Hashing costs no targeting here: every factorywire query names its
// devices by equality or $in (Range, Window, Gaps, UnstoredSamples,
// LastSeqs), which a hashed key routes to the shards holding them; only
// Latest over all devices asks every shard, as it would on any key. Its
// index is per bucket, not per sample, on a time-series collection.
func samplesShardKey() bson.D {
	return bson.D{{Key: fieldMeta + "." + metaDevice, Value: "hashed"}}
}

// idShardKey returns the shard key of the regular collections that
// factorywire writes by _id: {_id: "hashed"}. device_status (one
// document per device, upserted with filter {_id, ts: {$lt: …}}) and
// the rollups (replaced with upsert, filter {_id, rev}) are written by
// upserts, and an upsert into a sharded collection must name the whole
// shard key by equality; with _id as the key, _id is also unique across
// the cluster, not per shard, which the duplicate-key answer of a guarded
// upsert relies on (manual core/sharding-shard-key-indexes.txt: a unique
// index on a sharded collection is enforced across shards only when the
// key is its prefix). Their reads by _id ($in) go to the shards holding
// them. Hashed, because device_status is small (one document per device):
// on a ranged key it would stay one chunk on one shard, taking every
// status upsert, as many as the batches' devices; a hashed key splits it
// across the shards from the start, and the rollups, whose new bins come
// in time order, likewise. What it costs: Status's read of one topic's
// _id range, and a rollup window's read by device and time, ask every
// shard.
func idShardKey() bson.D { return bson.D{{Key: "_id", Value: "hashed"}} }

// shardState is what a Store learnt while sharding.
type shardState struct {
	mongos atomic.Bool // hello said: a mongos of MongoDB 6.0 or later
	status atomic.Bool // device_status is sharded
}

// deployment is what a hello reply says about the server that sent it,
// as far as sharding cares.
type deployment struct {
	mongos  bool   // msg: "isdbgrid"
	setName string // the replica set of a member, "" otherwise
	maxWire int64  // maxWireVersion
}

// parseHello reads the reply to {hello: 1}. A mongos says msg: "isdbgrid"
// (the server-discovery specification, which the driver follows too); a
// replica set member has a setName; a server with neither is standalone.
func parseHello(reply bson.Raw) deployment {
	msg, _ := reply.Lookup("msg").StringValueOK()
	set, _ := reply.Lookup("setName").StringValueOK()
	wire, _ := reply.Lookup("maxWireVersion").AsInt64OK()
	return deployment{mongos: msg == "isdbgrid", setName: set, maxWire: wire}
}

// shardable returns nil when d can shard factorywire's collections: a
// mongos of MongoDB 6.0 or later. Otherwise an error wrapping
// ErrNotMongos says what the server is.
func (d deployment) shardable() error {
	switch {
	case d.mongos && d.maxWire >= minShardWireVersion:
		return nil
	case d.mongos:
		return fmt.Errorf("%w: the mongos reports maxWireVersion %d, older than MongoDB 6.0 (maxWireVersion %d), which factorywire needs",
			ErrNotMongos, d.maxWire, minShardWireVersion)
	case d.setName != "":
		return fmt.Errorf("%w: the server is a member of the replica set %q (hello: setName %q, no msg \"isdbgrid\")", ErrNotMongos, d.setName, d.setName)
	}
	return fmt.Errorf("%w: the server is standalone, a mongod outside any replica set or the FerretDB stand-in (hello: no setName, no msg \"isdbgrid\")", ErrNotMongos)
}

// notMongosFix is the Fix of the error shardable's errors come in.
const notMongosFix = "sharding (Options.Shard, the sink's mongodb.shard) needs the mongos routers of a sharded cluster of MongoDB 6.0 " +
	"or later in the connection string; against a replica set or a standalone server, turn it off"

// checkMongos returns nil when the Store talks to a mongos of MongoDB 6.0
// or later, which it asks once with {hello: 1} on the admin database and
// then remembers. Otherwise it returns a *CommandError for shardCollection
// on coll, with Code 0 (nothing was sent), wrapping ErrNotMongos: a
// replica set or standalone server has no shardCollection, and retrying
// does not give it one.
func (s *Store) checkMongos(ctx context.Context, coll string) error {
	if s.shard.mongos.Load() {
		return nil
	}
	reply, err := s.client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: int32(1)}}).Raw()
	if err != nil {
		return s.commandError(coll, "hello", "ask whether the server is a mongos", err)
	}
	if err := parseHello(reply).shardable(); err != nil {
		return &CommandError{Namespace: s.namespace(coll), Command: "shardCollection", Fix: notMongosFix, Err: err}
	}
	s.shard.mongos.Store(true)
	return nil
}

// shardCommand returns the command that shards the namespace ns on key,
// sent to the admin database:
//
//	{shardCollection: "factorywire.plant-a.press", key: {"meta.device": "hashed"}}
//
// Nothing else: no timeseries option, because the collection exists
// already (Ensure creates it, with the bucketing and TTL that
// shardCollection's timeseries option cannot carry) and then "the
// timeseries spec from the collection catalog is inherited" (TOOLS-2999,
// the change that added it); no numInitialChunks, since the hashed key's
// default split of an empty collection (a chunk or two per shard) is what
// factorywire wants, and the current manual no longer lists it; no
// presplitHashedZones, which needs zones, and zone sharding "does not
// support time series collections" (includes/fact-zone-timeseries-support.rst);
// no write concern, since a mongos runs shardCollection, as every
// metadata command, with majority whatever is asked (DOCS-11585,
// SERVER-97754).
func shardCommand(ns string, key bson.D) bson.D {
	return bson.D{{Key: "shardCollection", Value: ns}, {Key: "key", Value: key}}
}

// keyString returns key as extended JSON, as messages show it.
func keyString(key bson.D) string {
	b, err := bson.MarshalExtJSON(key, false, false)
	if err != nil {
		return fmt.Sprint(key)
	}
	return string(b)
}

// shardOutcome is what an answer to shardCollection asks Store to do.
type shardOutcome int

const (
	shardDone       shardOutcome = iota // sharded, now or before, on this key
	shardNeedsIndex                     // InvalidOptions: a non-empty collection without a supporting index
	shardOtherKey                       // AlreadyInitialized: sharded on another key
	shardFailed                         // anything else: commandError judges it
)

// classifyShard reads the error of a shardCollection. InvalidOptions (72)
// is also what MongoDB answers a non-empty collection without an index
// whose prefix is the key ("Please create an index that starts with the
// proposed shard key before sharding the collection", shard_key_util.cpp):
// the only InvalidOptions a fixed, valid key can meet, so Store then
// creates the index and asks once more.
func classifyShard(err error) shardOutcome {
	switch {
	case err == nil:
		return shardDone
	case hasCode(err, codeAlreadyInitialized):
		return shardOtherKey
	case hasCode(err, codeInvalidOptions):
		return shardNeedsIndex
	}
	return shardFailed
}

// ensureSharded shards coll on key, or finds it sharded on key, and does
// nothing without Options.Shard. It checks the server is a mongos
// (checkMongos), then sends shardCollection (shardCommand) to the admin
// database, which MongoDB answers ok for a collection sharded on that key
// already, so that every start sends it again safely. For a collection
// that does not exist or is empty, the mongos creates the key's index
// itself; a non-empty one without it is answered InvalidOptions, and
// ensureSharded then creates it (createIndexes with MongoDB's default
// name, such as "_id_hashed") and sends shardCollection once more, as the
// manual's "Shard an Existing Time Series Collection" does (index first).
// Sharding first means a collection sharded on another key is left as it
// was: that answer (AlreadyInitialized) is a *CollectionError wrapping
// ErrShape that names the collection and the key factorywire wanted; a
// shard key is changed only by resharding (time-series: 8.0.10 or
// later), an operator's decision.
//
// A collection that does not exist is created, empty and sharded, by the
// mongos (shardCollection runs the server's create-collection
// coordinator): that is how device_status comes to exist before its first
// upsert, which would otherwise create it unsharded. The rollup
// collections come here through ensureShardedByID, once their indexes
// exist.
func (s *Store) ensureSharded(ctx context.Context, coll string, key bson.D) error {
	if !s.opts.Shard {
		return nil
	}
	if err := s.checkMongos(ctx, coll); err != nil {
		return err
	}
	ns := s.namespace(coll)
	admin := s.client.Database("admin")
	for attempt := 0; ; attempt++ {
		err := admin.RunCommand(ctx, shardCommand(ns, key)).Err()
		switch classifyShard(err) {
		case shardDone:
			return nil
		case shardOtherKey:
			return otherKeyError(ns, key, err)
		case shardNeedsIndex:
			if attempt == 0 {
				if err := s.createIndex(ctx, coll, key); err != nil {
					return err
				}
				continue
			}
		}
		return s.commandError(coll, "shardCollection", "shard the collection on "+keyString(key), err)
	}
}

// otherKeyError is ensureSharded's answer to a collection (namespace ns)
// sharded on another key than key: err is the server's AlreadyInitialized.
func otherKeyError(ns string, key bson.D, err error) error {
	return &CollectionError{Namespace: ns, Err: ErrShape, Problem: fmt.Sprintf(
		"is sharded on another key than %s, the one factorywire shards it on (%v); factorywire leaves a shard key as it is: "+
			"keep it and turn sharding off for this deployment, or reshard it on %s (reshardCollection; time-series collections: MongoDB 8.0.10 or later)",
		keyString(key), err, keyString(key))}
}

// createIndex creates the index key with MongoDB's default name; a no-op
// when it exists.
func (s *Store) createIndex(ctx context.Context, coll string, key bson.D) error {
	model := mongo.IndexModel{Keys: key}
	if _, err := s.db.Collection(coll).Indexes().CreateOne(ctx, model); err != nil {
		return s.commandError(coll, "createIndexes", "create the index "+keyString(key)+" that supports the shard key", err)
	}
	return nil
}

// ensureShardedByID shards coll, a regular collection written by _id, on
// {_id: "hashed"} (idShardKey says why): ensureSharded(ctx, coll,
// idShardKey()). Without Options.Shard it does nothing and sends nothing.
// EnsureRollups calls it for "<topic>_1m" and "<topic>_1h" after their
// indexes; Ensure calls it for device_status.
func (s *Store) ensureShardedByID(ctx context.Context, coll string) error {
	return s.ensureSharded(ctx, coll, idShardKey())
}

// shardTopic is the end of Ensure with Options.Shard: it shards the
// topic's time-series collection coll on {meta.device: "hashed"}
// (samplesShardKey says why), then, the first time for this Store,
// device_status on {_id: "hashed"}. sink_offsets is not sharded: it
// holds a few documents per partition, read by {group, topic}, which no
// shard key of it would serve better than the database's primary shard
// alone, and sharding it would add a hashed index and routing for nothing.
func (s *Store) shardTopic(ctx context.Context, coll string) error {
	if !s.opts.Shard {
		return nil
	}
	if err := s.ensureSharded(ctx, coll, samplesShardKey()); err != nil {
		return err
	}
	if s.shard.status.Load() {
		return nil
	}
	if err := s.ensureShardedByID(ctx, StatusCollection); err != nil {
		return err
	}
	s.shard.status.Store(true)
	return nil
}
