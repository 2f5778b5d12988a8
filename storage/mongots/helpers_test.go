package mongots

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
)

// testCtx returns a context that ends with the test, bounded so a hung
// server fails the test instead of the whole run.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ferretStore starts a FerretDB and returns a Store on a fresh database of
// it, with opts (Database is replaced), and the monitor of its client.
func ferretStore(t testing.TB, opts Options) (*Store, *mongotest.Monitor) {
	t.Helper()
	m := &mongotest.Monitor{}
	client := mongotest.Connect(t, mongotest.Start(t), m)
	opts.Database = mongotest.DatabaseName("mongots")
	return New(client, opts), m
}

// realStore returns a Store on a fresh database of the MongoDB server in
// MONGODB_URI, dropped when the test ends, or skips the test.
func realStore(t testing.TB, opts Options) (*Store, *mongotest.Monitor) {
	t.Helper()
	m := &mongotest.Monitor{}
	client := mongotest.Connect(t, mongotest.RealURI(t), m)
	opts.Database = mongotest.DatabaseName("mongots_test")
	s := New(client, opts)
	mongotest.DropDatabase(t, s.Database())
	return s, m
}

// standIn returns the stand-in options, with the warning sent to a
// recorder.
func standIn() (Options, *recorder) {
	rec := &recorder{}
	opts := DefaultOptions()
	opts.TimeSeries = false
	opts.Logger = newLogger(rec)
	return opts, rec
}

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// sample returns the sample of device at t0 + i seconds, with seq i.
func sample(device string, i int, fields map[string]devices.Value) devices.Sample {
	return devices.Sample{
		Factory: "plant-a",
		Class:   "press",
		Device:  device,
		Time:    t0.Add(time.Duration(i) * time.Second),
		Seq:     uint64(i),
		Fields:  fields,
	}
}

// pressureDocs returns n documents per device, device d on partition d,
// offsets interleaved as one partition would hold them, pressure i.5 and
// cycles i.
func pressureDocs(devs []string, n int) []Doc {
	var docs []Doc
	for i := range n {
		for d, dev := range devs {
			docs = append(docs, Doc{
				Sample: sample(dev, i, map[string]devices.Value{
					"pressure": devices.Float64Value(float64(i) + 0.5),
					"cycles":   devices.Int64Value(int64(i)),
				}),
				Partition: int32(d),
				Offset:    int64(i),
			})
		}
	}
	return docs
}

// sameSample compares samples, values with devices.Value.Equal.
func sameSample(a, b devices.Sample) error {
	if a.Factory != b.Factory || a.Class != b.Class || a.Device != b.Device || !a.Time.Equal(b.Time) || a.Seq != b.Seq {
		return fmt.Errorf("identity %s/%s/%s %s seq %d, want %s/%s/%s %s seq %d",
			a.Factory, a.Class, a.Device, a.Time, a.Seq, b.Factory, b.Class, b.Device, b.Time, b.Seq)
	}
	if !maps.Equal(a.Tags, b.Tags) || !maps.Equal(a.Units, b.Units) {
		return fmt.Errorf("tags %v units %v, want %v %v", a.Tags, a.Units, b.Tags, b.Units)
	}
	if !maps.EqualFunc(a.Fields, b.Fields, devices.Value.Equal) {
		return fmt.Errorf("fields %v, want %v", a.Fields, b.Fields)
	}
	if len(a.Errors) != 0 || len(b.Errors) != 0 {
		if !maps.Equal(a.Errors, b.Errors) {
			return fmt.Errorf("errors %v, want %v", a.Errors, b.Errors)
		}
	}
	return nil
}

// extJSON returns v as canonical extended JSON, so types (int32, int64,
// double, date) are compared too.
func extJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, true, false)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}

// field returns the value at path in a recorded command as extJSON.
func field(t testing.TB, cmd bson.Raw, path ...string) string {
	t.Helper()
	v, err := cmd.LookupErr(path...)
	if err != nil {
		t.Fatalf("command %s has no %v", cmd, path)
	}
	return extJSON(t, v)
}

// onlyCommand returns the one command named name that m recorded.
func onlyCommand(t testing.TB, m *mongotest.Monitor, name string) bson.Raw {
	t.Helper()
	cmds := m.Commands(name)
	if len(cmds) != 1 {
		t.Fatalf("recorded %d %s commands, want 1: %v", len(cmds), name, cmds)
	}
	return cmds[0]
}

// recorder is a slog.Handler keeping the messages of its records.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	r.msgs = append(r.msgs, msg)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func newLogger(r *recorder) *slog.Logger { return slog.New(r) }
