package mongotest

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func TestStartRoundTrip(t *testing.T) {
	start := time.Now()
	uri := Start(t)
	t.Logf("FerretDB started in %v at %s", time.Since(start), uri)
	if !strings.HasPrefix(uri, "mongodb://127.0.0.1:") {
		t.Fatalf("URI %q, want mongodb://127.0.0.1:<port>/", uri)
	}
	var m Monitor
	client := Connect(t, uri, &m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	coll := client.Database("mongotest").Collection("round-trip")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		V string `bson:"v"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.V != "x" {
		t.Fatalf("read back v=%q, want x", got.V)
	}
	inserts := m.Commands("insert")
	if len(inserts) != 1 {
		t.Fatalf("recorded %d insert commands, want 1", len(inserts))
	}
	if name, _ := inserts[0].Lookup("insert").StringValueOK(); name != "round-trip" {
		t.Fatalf("insert command names collection %q, want round-trip: %s", name, inserts[0])
	}
	if n := len(m.Commands("find")); n != 1 {
		t.Fatalf("recorded %d find commands, want 1", n)
	}
	m.Reset()
	if n := len(m.All()); n != 0 {
		t.Fatalf("after Reset, %d commands recorded", n)
	}
}

// TestMonitorRecordsFailedCommands checks that a command FerretDB refuses
// is still recorded: command assertions rely on it.
func TestMonitorRecordsFailedCommands(t *testing.T) {
	var m Monitor
	client := Connect(t, Start(t), &m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := bson.D{
		{Key: "create", Value: "ts"},
		{Key: "timeseries", Value: bson.D{{Key: "timeField", Value: "ts"}}},
	}
	err := client.Database("mongotest").RunCommand(ctx, cmd).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 238 { // NotImplemented
		t.Fatalf("create with timeseries on FerretDB: got %v, want NotImplemented (238)", err)
	}
	creates := m.Commands("create")
	if len(creates) != 1 {
		t.Fatalf("recorded %d create commands, want 1", len(creates))
	}
	if tf, _ := creates[0].Lookup("timeseries", "timeField").StringValueOK(); tf != "ts" {
		t.Fatalf("recorded create %s lacks timeseries.timeField", creates[0])
	}
}

func TestStartSeveral(t *testing.T) {
	const n = 3
	uris := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { uris[i] = Start(t) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, uri := range uris {
		if seen[uri] {
			t.Fatalf("two servers share %s", uri)
		}
		seen[uri] = true
		client := Connect(t, uri, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := client.Ping(ctx, nil)
		cancel()
		if err != nil {
			t.Fatalf("ping %s: %v", uri, err)
		}
	}
}

func TestRealURISkips(t *testing.T) {
	if os.Getenv(URIEnv) != "" {
		t.Skipf("%s is set; this test checks the skip without it", URIEnv)
	}
	ok := t.Run("inner", func(t *testing.T) {
		RealURI(t)
		t.Error("RealURI returned without MONGODB_URI")
	})
	if !ok {
		t.Fatal("RealURI did not skip")
	}
}

func TestDatabaseName(t *testing.T) {
	a, b := DatabaseName("x"), DatabaseName("x")
	if a == b || !strings.HasPrefix(a, "x_") || len(a) != 2+16 {
		t.Fatalf("DatabaseName gave %q and %q", a, b)
	}
}
