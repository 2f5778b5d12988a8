package standin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite" // the driver of the stand-in's files, to look at them
)

// connect returns a client of uri; the caller disconnects it.
func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// startConnected starts a stand-in over dir and returns a client of it
// and a context of 60 s; both are closed when the test ends.
func startConnected(t *testing.T, dir string) (context.Context, *mongo.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	srv, err := Start(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client := connect(t, srv.URI())
	t.Cleanup(func() { client.Disconnect(ctx) })
	return ctx, client
}

// TestStartCloseStart writes through one stand-in, closes it and reads
// the document back from a second one over the same directory, which
// Start created.
func TestStartCloseStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "standin")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	srv, err := Start(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u, err := url.Parse(srv.URI())
	if err != nil || u.Scheme != "mongodb" || u.Path != "/" {
		t.Fatalf("URI %q: want mongodb://127.0.0.1:PORT/ (%v)", srv.URI(), err)
	}
	if host, _, _ := net.SplitHostPort(u.Host); host != "127.0.0.1" {
		t.Fatalf("URI %q: listens on %q, want the default 127.0.0.1", srv.URI(), host)
	}
	client := connect(t, srv.URI())
	coll := client.Database("standin").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	if err := client.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	again, err := Start(Config{Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	client = connect(t, again.URI())
	defer client.Disconnect(ctx)
	var got struct {
		V string `bson:"v"`
	}
	if err := client.Database("standin").Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&got); err != nil || got.V != "kept" {
		t.Fatalf("after a restart over %s: %+v, %v; want the document written before", dir, got, err)
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no directory", Config{}, []string{"no directory"}},
		{"address in use", Config{Dir: t.TempDir(), Listen: busy.Addr().String()}, []string{busy.Addr().String(), "address already in use"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := Start(tc.cfg)
			if err == nil {
				srv.Close()
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
	// A failed Start leaves nothing behind: FerretDB's release left the
	// backend of a New that could not listen open, and its finalizer
	// panicked, ending this test binary, at a garbage collection.
	for range 10 {
		runtime.GC()
		runtime.Gosched()
	}
}

// TestIDLookupsUseIndex checks the second change factorywire carries in
// FerretDB (third_party/ferretdb/README.md): a find, update or delete by
// _id is served by the collection's _id index instead of reading the whole
// table, which made every update on the stand-in cost what its collection
// holds. FerretDB's explain returns SQLite's plan of the statement its
// finds send, whose WHERE clause its updates and deletes by _id share. It
// also checks that the lookups still answer as before: one document found,
// replaced, deleted by _id, a string _id and an ObjectID alike, and a
// duplicate _id still refused.
func TestIDLookupsUseIndex(t *testing.T) {
	ctx, client := startConnected(t, t.TempDir())
	db := client.Database("standin")
	coll := db.Collection("c")
	oid := bson.NewObjectID()
	docs := []any{bson.D{{Key: "_id", Value: oid}, {Key: "v", Value: 0}}}
	for i := range 50 {
		docs = append(docs, bson.D{{Key: "_id", Value: "dev" + strings.Repeat("x", i)}, {Key: "v", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	for _, id := range []any{"devxx", oid} {
		var res bson.Raw
		cmd := bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: bson.D{{Key: "_id", Value: id}}}}}}
		if err := db.RunCommand(ctx, cmd).Decode(&res); err != nil {
			t.Fatal(err)
		}
		plan := res.Lookup("queryPlanner", "Plan").String()
		if !strings.Contains(plan, "USING INDEX") || !strings.Contains(plan, "__id_") {
			t.Errorf("find {_id: %v}: SQLite plan %s, want a SEARCH using the _id index", id, plan)
		}
	}

	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "devxx"}}).Err(); err != nil {
		t.Fatalf("find by string _id: %v", err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&got); err != nil || got["v"] != int32(0) {
		t.Fatalf("find by ObjectID: %v, %v", got, err)
	}
	res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "devxx"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: "new"}}}})
	if err != nil || res.MatchedCount != 1 || res.ModifiedCount != 1 {
		t.Fatalf("update by _id: %+v, %v", res, err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "devxx"}}).Decode(&got); err != nil || got["v"] != "new" {
		t.Fatalf("after the update: %v, %v", got, err)
	}
	rep, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "absent"}}, bson.D{{Key: "v", Value: 1}}, options.Replace().SetUpsert(true))
	if err != nil || rep.UpsertedCount != 1 {
		t.Fatalf("upsert by _id: %+v, %v", rep, err)
	}
	del, err := coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"devx", "absent", oid}}}}})
	if err != nil || del.DeletedCount != 3 {
		t.Fatalf("delete by _id: %+v, %v", del, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 49 {
		t.Fatalf("%d documents left, %v: want 49", n, err)
	}
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "dev"}, {Key: "v", Value: 2}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("insert of an _id held: %v, want a duplicate key error", err)
	}
}

// TestSecondaryIndexes checks the third change factorywire carries in
// FerretDB (third_party/ferretdb/README.md): a non-unique index is
// recorded, not built in SQLite, whose queries from this backend never
// read it; a unique one is built and enforced. The client sees every
// index as created (listIndexes, collStats), finds on the field answer as
// before, and dropIndexes removes an index whether it was built or not,
// one an earlier build made included.
func TestSecondaryIndexes(t *testing.T) {
	dir := t.TempDir()
	ctx, client := startConnected(t, dir)
	db := client.Database("standin")
	coll := db.Collection("c")
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "meta.device", Value: 1}, {Key: "ts", Value: -1}}},
		{Keys: bson.D{{Key: "serial", Value: 1}}, Options: options.Index().SetUnique(true)},
	}); err != nil {
		t.Fatal(err)
	}
	var docs []any
	for i := range 20 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "meta", Value: bson.D{{Key: "device", Value: fmt.Sprintf("d%d", i%4)}}}, {Key: "ts", Value: i}, {Key: "serial", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	const all, device = "_id_ meta.device_1_ts_-1 serial_1", "meta.device_1_ts_-1"
	if got := indexNames(ctx, t, coll); got != all {
		t.Errorf("listIndexes: %s, want %s", got, all)
	}
	sqlite, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "standin.sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer sqlite.Close()
	var table string
	if err := sqlite.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = 'c'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	built := func() string {
		t.Helper()
		rows, err := sqlite.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name`, table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			names = append(names, strings.TrimPrefix(name, table+"_"))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(names, " ")
	}
	if got := built(); got != "_id_ serial_1" {
		t.Errorf("SQLite holds the indexes %q, want only the unique ones: _id_ serial_1", got)
	}
	var stats bson.Raw
	if err := db.RunCommand(ctx, bson.D{{Key: "collStats", Value: "c"}}).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if n := stats.Lookup("nindexes").AsInt64(); n != 3 {
		t.Errorf("collStats nindexes %d, want 3", n)
	}
	for _, name := range strings.Fields(all) {
		size, ok := stats.Lookup("indexSizes", name).AsInt64OK()
		if !ok || (size == 0) != (name == device) {
			t.Errorf("collStats indexSizes.%s = %d (%v): want 0 for the index not built, more for the others (%s)", name, size, ok, stats.Lookup("indexSizes"))
		}
	}

	n, err := coll.CountDocuments(ctx, bson.D{{Key: "meta.device", Value: "d1"}, {Key: "ts", Value: bson.D{{Key: "$gte", Value: 9}}}})
	if err != nil || n != 3 {
		t.Errorf("count of d1 from ts 9: %d, %v; want 3", n, err)
	}
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 100}, {Key: "serial", Value: 7}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("insert of a serial held: %v, want a duplicate key error", err)
	}

	// dropIndexes: the index not built, then one built as an earlier
	// build of the stand-in did (the data directory outlives builds).
	if err := coll.Indexes().DropOne(ctx, device); err != nil {
		t.Fatalf("drop %s: %v", device, err)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "ts", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "standin.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.ExecContext(ctx, fmt.Sprintf(`CREATE INDEX %q ON %q (_ferretdb_sjson->"ts")`, table+"_ts_1", table)); err != nil {
		t.Fatal(err)
	}
	if got := built(); got != "_id_ serial_1 ts_1" {
		t.Fatalf("SQLite holds %q after making ts_1 by hand", got)
	}
	if err := coll.Indexes().DropOne(ctx, "ts_1"); err != nil {
		t.Fatalf("drop ts_1: %v", err)
	}
	if got := built(); got != "_id_ serial_1" {
		t.Errorf("SQLite holds %q after dropIndexes ts_1, want _id_ serial_1", got)
	}
	if got := indexNames(ctx, t, coll); got != "_id_ serial_1" {
		t.Errorf("listIndexes after the drops: %s, want _id_ serial_1", got)
	}
}

// indexNames returns the names listIndexes gives for coll, sorted, space
// separated.
func indexNames(ctx context.Context, t *testing.T, coll *mongo.Collection) string {
	t.Helper()
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// TestInsertBatches checks that an insert of more documents than the
// stand-in puts in one SQLite transaction (1000, change 4 in
// third_party/ferretdb/README.md) answers as MongoDB does when a
// duplicate _id sits past the first chunk: unordered, every other
// document stored and the one refused named by its index; ordered, the
// documents before it stored and none after.
func TestInsertBatches(t *testing.T) {
	ctx, client := startConnected(t, t.TempDir())
	const n, dup = 2500, 1700
	for _, ordered := range []bool{false, true} {
		coll := client.Database("standin").Collection(fmt.Sprintf("ordered_%v", ordered))
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: dup}}); err != nil {
			t.Fatal(err)
		}
		docs := make([]any, n)
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "v", Value: i}}
		}
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(ordered))
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 1 || bwe.WriteErrors[0].Index != dup || !mongo.IsDuplicateKeyError(err) {
			t.Fatalf("ordered %v: %v, want one duplicate key error at index %d", ordered, err, dup)
		}
		want := int64(n)
		if ordered {
			want = dup + 1 // 0 … dup-1, and the one inserted first
		}
		if got, err := coll.CountDocuments(ctx, bson.D{}); err != nil || got != want {
			t.Errorf("ordered %v: %d documents stored, %v; want %d", ordered, got, err, want)
		}
		if ordered {
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: dup + 1}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				t.Errorf("ordered: the document after the duplicate: %v, want none stored", err)
			}
		}
	}
}

// TestFerretDBChanges runs the tests third_party/ferretdb holds for
// factorywire's changes inside FerretDB's internal packages (the SJSON
// encoder and decoder of changes 6 and 7, against the release's). That
// copy is a module of its own, which this repository's `go test ./...`
// does not reach, so this runs `go test` there.
func TestFerretDBChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "./internal/handler/sjson/")
	cmd.Dir = filepath.Join("..", "..", "third_party", "ferretdb")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in %s: %v\n%s", cmd.Dir, err, out)
	}
	if !strings.Contains(string(out), "ok  \tgithub.com/FerretDB/FerretDB/internal/handler/sjson") {
		t.Fatalf("go test in %s ran no test:\n%s", cmd.Dir, out)
	}
	t.Logf("%s", out)
}

// TestIDColumn checks the eighth change factorywire carries in FerretDB
// (third_party/ferretdb/README.md): a collection's table holds each
// document's _id in a column of its own, which the unique _id index and
// the lookups by _id use, so SQLite does not parse a document's JSON to
// index it; and a table an earlier build made, with the index on the
// JSON expression and no such column, gets the column and its indexes
// built again when the stand-in opens the directory, its data and
// uniqueness kept.
func TestIDColumn(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oid := bson.NewObjectID()
	ids := []any{"dev-1", oid, int32(7), int64(1) << 40, 8.5} // string, ObjectID, int32, int64, double

	// open starts a stand-in over dir and returns the collection and a
	// function that stops it.
	open := func() (*mongo.Database, func()) {
		t.Helper()
		srv, err := Start(Config{Dir: dir, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		client := connect(t, srv.URI())
		return client.Database("standin"), func() {
			client.Disconnect(ctx)
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	file := func() *sql.DB {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "standin.sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	// schema returns the SQL of c's table and of its indexes on SQLite.
	schema := func(db *sql.DB) (table string, sqls []string) {
		t.Helper()
		if err := db.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = 'c'`).Scan(&table); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY type DESC, name`, table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			sqls = append(sqls, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return table, sqls
	}
	// check uses the collection as the sink and the tests do.
	check := func(db *mongo.Database, stage string) {
		t.Helper()
		coll := db.Collection("c")
		for _, id := range ids {
			var got bson.M
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil {
				t.Fatalf("%s: find {_id: %v}: %v", stage, id, err)
			}
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "serial", Value: 100}}); !mongo.IsDuplicateKeyError(err) {
				t.Fatalf("%s: insert of _id %v held: %v, want a duplicate key error", stage, id, err)
			}
		}
		for _, id := range []any{"dev-1", oid} {
			var res bson.Raw
			cmd := bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: bson.D{{Key: "_id", Value: id}}}}}}
			if err := db.RunCommand(ctx, cmd).Decode(&res); err != nil {
				t.Fatal(err)
			}
			if plan := res.Lookup("queryPlanner", "Plan").String(); !strings.Contains(plan, "USING INDEX") || !strings.Contains(plan, "__id_") {
				t.Errorf("%s: find {_id: %v}: SQLite plan %s, want a SEARCH using the _id index", stage, id, plan)
			}
		}
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "new-" + stage}, {Key: "serial", Value: 100}}); err != nil {
			t.Fatalf("%s: insert of a new _id: %v", stage, err)
		}
		res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "dev-1"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "v", Value: 1}}}})
		if err != nil || res.ModifiedCount != 1 {
			t.Fatalf("%s: update by _id: %+v, %v", stage, res, err)
		}
	}

	db, stop := open()
	coll := db.Collection("c")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "serial", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetUnique(true).SetName("serial_id")}); err != nil {
		t.Fatal(err)
	}
	var docs []any
	for i, id := range ids {
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "serial", Value: i}, {Key: "v", Value: 0}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	check(db, "made")
	// A capped collection's table has a record id column first.
	if err := db.CreateCollection(ctx, "capped", options.CreateCollection().SetCapped(true).SetSizeInBytes(1<<20)); err != nil {
		t.Fatal(err)
	}
	capped := db.Collection("capped")
	if _, err := capped.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "_id", Value: oid}}}); err != nil {
		t.Fatal(err)
	}
	if err := capped.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Err(); err != nil {
		t.Fatalf("capped: find by _id: %v", err)
	}
	if _, err := capped.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("capped: insert of an _id held: %v, want a duplicate key error", err)
	}
	stop()

	f := file()
	table, sqls := schema(f)
	joined := strings.Join(sqls, "\n")
	if !strings.Contains(sqls[0], "_ferretdb_id TEXT") || strings.Contains(joined, `_ferretdb_sjson->"_id"`) || strings.Count(joined, "_ferretdb_id") != 3 {
		t.Fatalf("a new table and its unique indexes:\n%s\nwant the column _ferretdb_id and both indexes on it", joined)
	}

	// Make the table as an earlier build did: no column, indexes on the
	// document's JSON.
	for _, q := range []string{
		fmt.Sprintf(`DROP INDEX %q`, table+"__id_"),
		fmt.Sprintf(`DROP INDEX %q`, table+"_serial_id"),
		fmt.Sprintf(`ALTER TABLE %q DROP COLUMN _ferretdb_id`, table),
		fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (_ferretdb_sjson->"_id")`, table+"__id_", table),
		fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (_ferretdb_sjson->"serial", _ferretdb_sjson->"_id")`, table+"_serial_id", table),
	} {
		if _, err := f.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	f.Close()

	db, stop = open()
	check(db, "migrated")
	stop()
	f = file()
	defer f.Close()
	_, sqls = schema(f)
	joined = strings.Join(sqls, "\n")
	if strings.Contains(joined, `_ferretdb_sjson->"_id"`) || strings.Count(joined, "_ferretdb_id") != 3 {
		t.Fatalf("the table after the migration:\n%s\nwant the column _ferretdb_id and both indexes on it", joined)
	}
	var rows, empty int
	if err := f.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE _ferretdb_id IS NULL) FROM %q`, table)).Scan(&rows, &empty); err != nil || rows != len(ids)+2 || empty != 0 {
		t.Fatalf("after the migration %d rows, %d without _ferretdb_id (%v); want %d, 0", rows, empty, err, len(ids)+2)
	}

	// A third start leaves the migrated table as it is.
	db, stop = open()
	check(db, "reopened")
	stop()
}
