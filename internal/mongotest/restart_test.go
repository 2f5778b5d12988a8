package mongotest

import (
	"context"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestStartAtRestart stops a server and starts it again on the same
// address and directory: a client connected throughout reads what it
// wrote before the outage.
func TestStartAtRestart(t *testing.T) {
	dir := t.TempDir()
	uri, stop := StartAt(t, dir, "127.0.0.1:0")
	client := Connect(t, uri, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	coll := client.Database("mongotest").Collection("restart")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	stop()
	stop() // idempotent
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	if _, err := coll.InsertOne(short, bson.D{{Key: "_id", Value: 2}}); err == nil {
		t.Fatal("insert during the outage succeeded")
	}
	cancelShort()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := StartAt(t, dir, u.Host)
	if again != uri {
		t.Fatalf("restarted at %s, want %s", again, uri)
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d documents after the restart, want 1", n)
	}
}
