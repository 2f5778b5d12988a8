package mongots

// Sharding (Options.Shard). No mongos runs here: FerretDB, the only
// server, answers shardCollection with CommandNotFound. So the commands
// are asserted as the driver sends them (recorded even when FerretDB
// refuses them), the "is this a mongos" check is a function of a hello
// reply tested with replies as MongoDB sends them, and the real behaviour
// is tested against MONGODB_URI when it names a mongos
// (TestRealShardMongos) or anything else (TestRealShardRefused).
//
//	MONGODB_URI=mongodb://mongos1:27017 go test -run RealShard ./storage/mongots/

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/factorywire/factorywire/internal/mongotest"
)

// helloReply returns a hello reply holding d's fields.
func helloReply(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(append(bson.D{{Key: "isWritablePrimary", Value: true}, {Key: "maxBsonObjectSize", Value: int32(16777216)}}, d...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHello(t *testing.T) {
	for _, c := range []struct {
		name  string
		reply bson.D
		want  deployment
		err   string // "" for shardable
	}{
		{"mongos 8.0", bson.D{{Key: "msg", Value: "isdbgrid"}, {Key: "maxWireVersion", Value: int32(25)}, {Key: "minWireVersion", Value: int32(0)}},
			deployment{mongos: true, maxWire: 25}, ""},
		{"mongos 6.0", bson.D{{Key: "msg", Value: "isdbgrid"}, {Key: "maxWireVersion", Value: int32(17)}},
			deployment{mongos: true, maxWire: 17}, ""},
		{"mongos 5.0", bson.D{{Key: "msg", Value: "isdbgrid"}, {Key: "maxWireVersion", Value: int32(13)}},
			deployment{mongos: true, maxWire: 13}, "maxWireVersion 13, older than MongoDB 6.0"},
		{"replica set primary", bson.D{{Key: "setName", Value: "rs0"}, {Key: "hosts", Value: bson.A{"h1:27017", "h2:27017"}}, {Key: "maxWireVersion", Value: int32(25)}},
			deployment{setName: "rs0", maxWire: 25}, `member of the replica set "rs0"`},
		{"shard member", bson.D{{Key: "setName", Value: "shard01"}, {Key: "maxWireVersion", Value: int32(21)}},
			deployment{setName: "shard01", maxWire: 21}, `replica set "shard01"`},
		{"standalone", bson.D{{Key: "maxWireVersion", Value: int32(21)}},
			deployment{maxWire: 21}, "standalone"},
		{"msg of something else", bson.D{{Key: "msg", Value: "other"}, {Key: "maxWireVersion", Value: int32(25)}},
			deployment{maxWire: 25}, "standalone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := parseHello(helloReply(t, c.reply))
			if got != c.want {
				t.Fatalf("parseHello: %+v, want %+v", got, c.want)
			}
			err := got.shardable()
			if c.err == "" {
				if err != nil {
					t.Fatalf("shardable: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrNotMongos) || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("shardable: %v, want ErrNotMongos saying %q", err, c.err)
			}
		})
	}
}

// commandNames returns the names of the commands m recorded, in order.
func commandNames(m *mongotest.Monitor) []string {
	var names []string
	for _, c := range m.All() {
		names = append(names, c.Name)
	}
	return names
}

// TestEnsureShardRefusedOnStandIn: FerretDB is no mongos. With Shard,
// Ensure asks hello and stops there, with an error that does not retry:
// nothing is created.
func TestEnsureShardRefusedOnStandIn(t *testing.T) {
	for _, ts := range []bool{true, false} {
		t.Run(fmt.Sprintf("time-series %v", ts), func(t *testing.T) {
			opts := DefaultOptions()
			opts.TimeSeries, opts.Shard = ts, true
			s, m := ferretStore(t, opts)
			err := s.Ensure(testCtx(t), CollectionSpec{Name: topic})
			var ce *CommandError
			if !errors.As(err, &ce) || !errors.Is(err, ErrNotMongos) || ce.Code != 0 || ce.Command != "shardCollection" ||
				ce.Namespace != s.namespace(topic) {
				t.Fatalf("Ensure with Shard on FerretDB: %v, want a *CommandError (code 0, shardCollection, %s) wrapping ErrNotMongos", err, s.namespace(topic))
			}
			for _, want := range []string{"mongots: cannot run shardCollection on " + s.namespace(topic), "standalone", "mongos routers", "turn it off"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if names := commandNames(m); !slices.Equal(names, []string{"hello"}) {
				t.Fatalf("commands %v, want only hello", names)
			}
			all := m.All()
			if all[0].Database != "admin" {
				t.Errorf("hello sent to %q, want admin", all[0].Database)
			}
			assertCommand(t, all[0].Doc, bson.D{{Key: "hello", Value: int32(1)}})
			// FerretDB's own reply, read as Ensure read it.
			if d := parseHello(all[0].Reply); d.mongos || d.setName != "" {
				t.Fatalf("FerretDB's hello %s read as %+v, want standalone", all[0].Reply, d)
			}
			// The answer is not remembered: the next Ensure asks again.
			if err := s.Ensure(testCtx(t), CollectionSpec{Name: topic}); !errors.Is(err, ErrNotMongos) {
				t.Fatalf("second Ensure: %v", err)
			}
			if n := len(m.Commands("hello")); n != 2 {
				t.Fatalf("%d hello commands, want 2", n)
			}
		})
	}
}

// mongosStore returns a stand-in Store with Shard whose mongos check has
// passed already, as it would have against a mongos: what it sends next
// is recorded, and FerretDB refuses the sharding commands themselves.
func mongosStore(t *testing.T) (*Store, *mongotest.Monitor) {
	t.Helper()
	opts, _ := standIn()
	opts.Shard = true
	s, m := ferretStore(t, opts)
	s.shard.mongos.Store(true)
	return s, m
}

// wantRefusedShard checks err is FerretDB's refusal of shardCollection on
// coll: CommandNotFound, as a *CommandError naming the namespace.
func wantRefusedShard(t *testing.T, s *Store, coll string, err error) {
	t.Helper()
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Command != "shardCollection" || ce.Code != codeCommandNotFound || ce.Namespace != s.namespace(coll) {
		t.Fatalf("sharding %s on FerretDB: %v, want a *CommandError for shardCollection with CommandNotFound (59)", coll, err)
	}
}

// onlyAdminCommand returns the one command named name that m recorded,
// checking it went to the admin database.
func onlyAdminCommand(t *testing.T, m *mongotest.Monitor, name string) bson.Raw {
	t.Helper()
	var found []mongotest.Command
	for _, c := range m.All() {
		if c.Name == name {
			found = append(found, c)
		}
	}
	if len(found) != 1 || found[0].Database != "admin" {
		t.Fatalf("recorded %d %s commands (%v), want 1 to admin", len(found), name, found)
	}
	return found[0].Doc
}

// TestEnsureShardCommands: Ensure makes the collection ready as without
// Shard, then shards it: {shardCollection: "<db>.plant-a.press", key:
// {meta.device: "hashed"}} to admin, and nothing else (no timeseries
// option, no index first: the mongos makes the index of an empty
// collection).
func TestEnsureShardCommands(t *testing.T) {
	s, m := mongosStore(t)
	err := s.Ensure(testCtx(t), CollectionSpec{Name: topic})
	wantRefusedShard(t, s, topic, err)
	want := []string{"listCollections", "create", "createIndexes", "dropIndexes", "shardCollection"}
	if names := commandNames(m); !slices.Equal(names, want) {
		t.Fatalf("commands %v, want %v", names, want)
	}
	assertCommand(t, onlyAdminCommand(t, m, "shardCollection"), bson.D{
		{Key: "shardCollection", Value: s.Database().Name() + "." + topic},
		{Key: "key", Value: bson.D{{Key: "meta.device", Value: "hashed"}}},
	})
	if s.shard.status.Load() {
		t.Fatal("device_status marked sharded after the topic failed")
	}
}

// TestShardByIDCommands: device_status and the rollup collections are
// sharded on {_id: "hashed"}.
func TestShardByIDCommands(t *testing.T) {
	for _, coll := range []string{StatusCollection, topic + "_1m", topic + "_1h"} {
		t.Run(coll, func(t *testing.T) {
			s, m := mongosStore(t)
			wantRefusedShard(t, s, coll, s.ensureShardedByID(testCtx(t), coll))
			if names := commandNames(m); !slices.Equal(names, []string{"shardCollection"}) {
				t.Fatalf("commands %v, want only shardCollection", names)
			}
			assertCommand(t, onlyAdminCommand(t, m, "shardCollection"), bson.D{
				{Key: "shardCollection", Value: s.Database().Name() + "." + coll},
				{Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}},
			})
		})
	}
}

// TestShardOffSendsNothing: without Shard, neither Ensure nor
// ensureShardedByID sends hello, shardCollection or a hashed index.
func TestShardOffSendsNothing(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{StatusCollection, topic + "_1m"} {
		if err := s.ensureShardedByID(ctx, coll); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"listCollections", "create", "createIndexes", "dropIndexes"}
	if names := commandNames(m); !slices.Equal(names, want) {
		t.Fatalf("commands %v, want %v", names, want)
	}
}

// TestShardIndexCommand: the supporting index ensureSharded creates when
// a non-empty collection lacks it (after InvalidOptions), with MongoDB's
// default name. FerretDB has no hashed indexes either; the command is
// what counts.
func TestShardIndexCommand(t *testing.T) {
	for _, c := range []struct {
		key  bson.D
		name string
	}{
		{samplesShardKey(), IndexDeviceHashed},
		{idShardKey(), IndexIDHashed},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, m := mongosStore(t)
			err := s.createIndex(testCtx(t), topic, c.key)
			cmds := m.Commands("createIndexes")
			if len(cmds) != 1 {
				t.Fatalf("%d createIndexes commands (err %v), want 1", len(cmds), err)
			}
			assertCommand(t, cmds[0], bson.D{
				{Key: "createIndexes", Value: topic},
				{Key: "indexes", Value: bson.A{bson.D{{Key: "key", Value: c.key}, {Key: "name", Value: c.name}}}},
			})
		})
	}
}

func TestClassifyShard(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want shardOutcome
	}{
		{"ok", nil, shardDone},
		{"other key", mongo.CommandError{Code: 23, Name: "AlreadyInitialized", Message: "sharding already enabled for collection factorywire.plant-a.press"}, shardOtherKey},
		{"no index", mongo.CommandError{Code: 72, Name: "InvalidOptions", Message: "Please create an index that starts with the proposed shard key before sharding the collection"}, shardNeedsIndex},
		{"not a mongos", mongo.CommandError{Code: 59, Name: "CommandNotFound"}, shardFailed},
		{"unauthorized", mongo.CommandError{Code: 13, Name: "Unauthorized"}, shardFailed},
		{"network", fmt.Errorf("connection reset"), shardFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := classifyShard(c.err); got != c.want {
				t.Fatalf("classifyShard(%v) = %d, want %d", c.err, got, c.want)
			}
		})
	}
}

// TestShardErrors: what a refused shardCollection says.
func TestShardErrors(t *testing.T) {
	s := New(&mongo.Client{}, DefaultOptions())
	ns := s.namespace(topic)

	other := mongo.CommandError{Code: 23, Name: "AlreadyInitialized", Message: "sharding already enabled for collection " + ns}
	err := otherKeyError(ns, samplesShardKey(), other)
	var coll *CollectionError
	if !errors.As(err, &coll) || !errors.Is(err, ErrShape) || coll.Namespace != ns {
		t.Fatalf("other key: %v, want a *CollectionError for %s wrapping ErrShape", err, ns)
	}
	for _, want := range []string{`{"meta.device":"hashed"}`, "sharding already enabled", "reshardCollection", "8.0.10"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("other key: %q does not say %q", err, want)
		}
	}

	for _, c := range []struct {
		err error
		fix string
	}{
		{mongo.CommandError{Code: 13, Name: "Unauthorized"}, "clusterManager on admin"},
		{mongo.CommandError{Code: 72, Name: "InvalidOptions"}, `"Past one replica set"`},
		{mongo.CommandError{Code: 20, Name: "IllegalOperation"}, `"Past one replica set"`},
	} {
		err := s.commandError(topic, "shardCollection", "shard the collection", c.err)
		var ce *CommandError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.fix) || !strings.Contains(err.Error(), "MongoDB refused shardCollection on "+ns) {
			t.Errorf("%v: %v, want a *CommandError saying %q", c.err, err, c.fix)
		}
	}
}

// shardKeyOf returns the shard key the config database holds for the
// collection coll of s's database: time-series collections are
// registered under their buckets namespace up to 8.0 at least.
func shardKeyOf(t *testing.T, s *Store, coll string) (bson.Raw, bool) {
	t.Helper()
	db := s.Database().Name()
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{db + "." + coll, db + ".system.buckets." + coll}}}}}
	raw, err := s.Database().Client().Database("config").Collection("collections").FindOne(testCtx(t), filter).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("read config.collections for %s: %v", coll, err)
	}
	return raw.Lookup("key").Document(), true
}

// isMongos asks the server of s whether it is a mongos, as Ensure does.
func isMongos(t *testing.T, s *Store) deployment {
	t.Helper()
	reply, err := s.Database().Client().Database("admin").RunCommand(testCtx(t), bson.D{{Key: "hello", Value: int32(1)}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	return parseHello(reply)
}

// TestRealShardMongos runs against a mongos only: the keys Ensure shards
// on, idempotence, an existing unsharded collection with data, and one
// sharded on another key.
func TestRealShardMongos(t *testing.T) {
	opts := DefaultOptions()
	opts.Shard = true
	s, m := realStore(t, opts)
	if d := isMongos(t, s); !d.mongos {
		t.Skipf("needs a mongos of a sharded cluster (MongoDB 6.0 or later) in %s; it names a server whose hello says %+v", mongotest.URIEnv, d)
	}
	ctx := testCtx(t)
	spec := CollectionSpec{Name: topic, ExpireAfter: 24 * time.Hour}
	if err := s.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		coll string
		want bson.D
	}{
		{topic, bson.D{{Key: "meta.device", Value: "hashed"}}},
		{StatusCollection, bson.D{{Key: "_id", Value: "hashed"}}},
	} {
		key, ok := shardKeyOf(t, s, c.coll)
		if !ok || extJSON(t, key) != extJSON(t, c.want) {
			t.Errorf("%s: shard key %s (sharded %v), want %s", c.coll, key, ok, extJSON(t, c.want))
		}
	}
	if typ, o := collOptions(t, s, topic); typ != "timeseries" || o.Lookup("expireAfterSeconds").Type == 0 {
		t.Errorf("sharded collection %s: type %s, options %s: want time-series with its TTL", topic, typ, o)
	}

	// Idempotent: shardCollection again, answered ok; device_status once
	// per Store.
	m.Reset()
	if err := s.Ensure(ctx, spec); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if n := len(m.Commands("shardCollection")); n != 1 {
		t.Fatalf("second Ensure sent %d shardCollection, want 1 (the topic's)", n)
	}

	// The rollups' helper on a collection that holds a document and no
	// hashed index: refused for want of one (InvalidOptions), which
	// ensureSharded then creates.
	rollups := topic + "_1m"
	if _, err := s.Database().Collection(rollups).InsertOne(ctx, bson.D{{Key: "_id", Value: "press-01@2026-12-01T08:00:00Z"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ensureShardedByID(ctx, rollups); err != nil {
		t.Fatalf("shard %s (one document, no hashed index: created after InvalidOptions): %v", rollups, err)
	}
	if key, ok := shardKeyOf(t, s, rollups); !ok || extJSON(t, key) != extJSON(t, idShardKey()) {
		t.Errorf("%s: shard key %s (sharded %v), want {_id: hashed}", rollups, key, ok)
	}

	// An existing unsharded time-series collection with data, as a
	// replica set that became a shard holds it: sharded after its hashed
	// index is created.
	existing := "plant-a.oven"
	plain := DefaultOptions()
	plain.Database = s.opts.Database
	unsharded := New(s.Database().Client(), plain)
	if err := unsharded.Ensure(ctx, CollectionSpec{Name: existing}); err != nil {
		t.Fatal(err)
	}
	if _, err := unsharded.Write(ctx, existing, pressureDocs([]string{"oven-01", "oven-02"}, 3)); err != nil {
		t.Fatal(err)
	}
	m.Reset()
	if err := s.Ensure(ctx, CollectionSpec{Name: existing}); err != nil {
		t.Fatalf("Ensure of an unsharded collection with data: %v", err)
	}
	if key, ok := shardKeyOf(t, s, existing); !ok || extJSON(t, key) != extJSON(t, samplesShardKey()) {
		t.Errorf("%s: shard key %s (sharded %v), want {meta.device: hashed}", existing, key, ok)
	}
	if n := len(m.Commands("shardCollection")); n != 2 {
		t.Errorf("%d shardCollection commands, want 2 (refused for want of an index, then sharded)", n)
	}

	// Sharded on another key by someone else: refused, left as it is.
	foreign := "plant-a.mixer"
	if err := unsharded.Ensure(ctx, CollectionSpec{Name: foreign}); err != nil {
		t.Fatal(err)
	}
	cmd := shardCommand(s.Database().Name()+"."+foreign, bson.D{{Key: "meta.factory", Value: int32(1)}})
	if err := s.Database().Client().Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
		t.Fatal(err)
	}
	err := s.Ensure(ctx, CollectionSpec{Name: foreign})
	var ce *CollectionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrShape) || ce.Namespace != s.namespace(foreign) {
		t.Fatalf("Ensure of a collection sharded on another key: %v, want a *CollectionError wrapping ErrShape", err)
	}
	idx, err := s.Database().Collection(foreign).Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range idx {
		if ix.Name == IndexDeviceHashed {
			t.Errorf("%s: the index %s was created on a collection factorywire refused", foreign, IndexDeviceHashed)
		}
	}
}

// TestRealShardRefused runs against anything but a mongos: Shard is
// refused before anything is created.
func TestRealShardRefused(t *testing.T) {
	opts := DefaultOptions()
	opts.Shard = true
	s, m := realStore(t, opts)
	if d := isMongos(t, s); d.mongos {
		t.Skipf("needs a server that is not a mongos in %s (a replica set or standalone); it names a mongos", mongotest.URIEnv)
	}
	err := s.Ensure(testCtx(t), CollectionSpec{Name: topic})
	if !errors.Is(err, ErrNotMongos) {
		t.Fatalf("Ensure with Shard: %v, want ErrNotMongos", err)
	}
	if n := len(m.Commands("create")) + len(m.Commands("shardCollection")); n != 0 {
		t.Fatalf("sent %d create or shardCollection commands, want none", n)
	}
}
