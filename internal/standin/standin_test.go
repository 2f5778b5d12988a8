package standin

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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

// TestIDLookupsUseIndex checks the one change factorywire carries in
// FerretDB (third_party/ferretdb/README.md): a find, update or delete by
// _id is served by the collection's _id index instead of reading the whole
// table, which made every update on the stand-in cost what its collection
// holds. FerretDB's explain returns SQLite's plan of the statement its
// finds send, whose WHERE clause its updates and deletes by _id share. It
// also checks that the lookups still answer as before: one document found,
// replaced, deleted by _id, a string _id and an ObjectID alike, and a
// duplicate _id still refused.
func TestIDLookupsUseIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := Start(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client := connect(t, srv.URI())
	defer client.Disconnect(ctx)
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
