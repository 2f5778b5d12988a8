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
