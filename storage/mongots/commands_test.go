package mongots

// Command assertions: what FerretDB cannot run (time-series create, TTL,
// collMod, $first, $avg, $min, $max, $dateTrunc) is checked here as the
// exact command the driver sends, recorded even when FerretDB then
// refuses it. real_test.go runs the same calls against MongoDB.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// assertCommand checks that cmd holds exactly the keys and values of want,
// in order, besides those the driver adds to every command ($db, lsid,
// $clusterTime, $readPreference) and maxTimeMS, which it derives from the
// context's deadline.
func assertCommand(t *testing.T, cmd bson.Raw, want bson.D) {
	t.Helper()
	elems, err := cmd.Elements()
	if err != nil {
		t.Fatal(err)
	}
	var got bson.D
	for _, e := range elems {
		if strings.HasPrefix(e.Key(), "$") || e.Key() == "lsid" || e.Key() == "maxTimeMS" {
			continue
		}
		got = append(got, bson.E{Key: e.Key(), Value: e.Value()})
	}
	if g, w := extJSON(t, got), extJSON(t, want); g != w {
		t.Fatalf("command\n got %s\nwant %s", g, w)
	}
}

func TestEnsureCreateCommand(t *testing.T) {
	for _, c := range []struct {
		name string
		spec CollectionSpec
		want bson.D
	}{
		{
			"default granularity, TTL",
			CollectionSpec{Name: topic, ExpireAfter: 30 * 24 * time.Hour},
			bson.D{
				{Key: "create", Value: topic},
				{Key: "timeseries", Value: bson.D{{Key: "timeField", Value: "ts"}, {Key: "metaField", Value: "meta"}, {Key: "granularity", Value: "seconds"}}},
				{Key: "expireAfterSeconds", Value: int64(2592000)},
			},
		},
		{
			"minutes, forever",
			CollectionSpec{Name: topic, Granularity: GranularityMinutes},
			bson.D{
				{Key: "create", Value: topic},
				{Key: "timeseries", Value: bson.D{{Key: "timeField", Value: "ts"}, {Key: "metaField", Value: "meta"}, {Key: "granularity", Value: "minutes"}}},
			},
		},
		{
			"custom bucketing",
			CollectionSpec{Name: topic, BucketMaxSpan: 6 * time.Hour, ExpireAfter: 90 * time.Second},
			bson.D{
				{Key: "create", Value: topic},
				{Key: "timeseries", Value: bson.D{
					{Key: "timeField", Value: "ts"}, {Key: "metaField", Value: "meta"},
					{Key: "bucketMaxSpanSeconds", Value: int32(21600)}, {Key: "bucketRoundingSeconds", Value: int32(21600)},
				}},
				{Key: "expireAfterSeconds", Value: int64(90)},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, m := ferretStore(t, DefaultOptions())
			err := s.Ensure(testCtx(t), c.spec)
			// FerretDB has no time-series collections: the error says so.
			if err == nil || !hasCode(err, codeNotImplemented) || !strings.Contains(err.Error(), "the server has no time-series collections") ||
				!strings.Contains(err.Error(), s.Database().Name()+"."+topic) {
				t.Fatalf("Ensure on FerretDB: %v, want NotImplemented explained", err)
			}
			assertCommand(t, onlyCommand(t, m, "create"), c.want)
			if n := len(m.Commands("createIndexes")); n != 0 {
				t.Fatalf("%d createIndexes after the create failed", n)
			}
		})
	}
}

func TestEnsureCreateIndexesCommands(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	if err := s.Ensure(testCtx(t), CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	cmds := m.Commands("createIndexes")
	want := []bson.D{
		{
			{Key: "createIndexes", Value: topic},
			{Key: "indexes", Value: bson.A{bson.D{
				{Key: "key", Value: bson.D{{Key: "meta.device", Value: int32(1)}, {Key: "ts", Value: int32(-1)}}},
				{Key: "name", Value: "meta.device_1_ts_-1"},
			}}},
		},
	}
	if len(cmds) != len(want) {
		t.Fatalf("%d createIndexes commands, want %d", len(cmds), len(want))
	}
	for i := range want {
		assertCommand(t, cmds[i], want[i])
	}
}

func TestCollModCommand(t *testing.T) {
	for _, c := range []struct {
		seconds int64
		want    any
	}{
		{3600, int64(3600)},
		{0, "off"},
	} {
		t.Run(fmt.Sprint(c.seconds), func(t *testing.T) {
			s, m := ferretStore(t, DefaultOptions())
			err := s.setExpireAfter(testCtx(t), topic, c.seconds)
			if err == nil || !strings.Contains(err.Error(), "collMod") { // FerretDB has no collMod
				t.Fatalf("collMod on FerretDB: %v, want an error naming collMod", err)
			}
			assertCommand(t, onlyCommand(t, m, "collMod"), bson.D{{Key: "collMod", Value: topic}, {Key: "expireAfterSeconds", Value: c.want}})
		})
	}
}

func TestLatestPipeline(t *testing.T) {
	tail := bson.A{
		bson.D{{Key: "$sort", Value: bson.D{{Key: "meta.device", Value: int32(1)}, {Key: "ts", Value: int32(-1)}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$meta.device"}, {Key: "doc", Value: bson.D{{Key: "$first", Value: "$$ROOT"}}}}}},
		bson.D{{Key: "$replaceRoot", Value: bson.D{{Key: "newRoot", Value: "$doc"}}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "meta.device", Value: int32(1)}}}},
	}
	for _, c := range []struct {
		name   string
		filter []string
		want   bson.A
	}{
		{"all devices", nil, tail},
		{"filter", []string{"press-07", "press-01", "press-07"}, append(bson.A{
			bson.D{{Key: "$match", Value: bson.D{{Key: "meta.device", Value: bson.D{{Key: "$in", Value: bson.A{"press-01", "press-07"}}}}}}},
		}, tail...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, m := ferretStore(t, DefaultOptions())
			_, err := s.Latest(testCtx(t), topic, c.filter)
			if err == nil { // FerretDB has no $first or $replaceRoot
				t.Fatal("Latest ran on FerretDB: the test assumes it cannot")
			}
			cmd := onlyCommand(t, m, "aggregate")
			assertStages(t, cmd, c.want)
		})
	}
}

// assertStages compares the pipeline of an aggregate command with want,
// stage by stage.
func assertStages(t *testing.T, cmd bson.Raw, want bson.A) {
	t.Helper()
	if got := field(t, cmd, "aggregate"); got != extJSON(t, topic) {
		t.Fatalf("aggregate on %s, want %s", got, topic)
	}
	stages, err := cmd.Lookup("pipeline").Array().Values()
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != len(want) {
		t.Fatalf("pipeline of %d stages, want %d: %s", len(stages), len(want), cmd.Lookup("pipeline"))
	}
	for i := range want {
		if got, w := extJSON(t, stages[i]), extJSON(t, want[i]); got != w {
			t.Errorf("stage %d\n got %s\nwant %s", i, got, w)
		}
	}
}

func TestWindowPipeline(t *testing.T) {
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	s, m := ferretStore(t, DefaultOptions())
	_, err := s.Window(testCtx(t), topic, "press-07", "pressure", from, to, "minute", 15)
	if err == nil { // FerretDB has no $dateTrunc, $min, $avg, $max
		t.Fatal("Window ran on FerretDB: the test assumes it cannot")
	}
	assertStages(t, onlyCommand(t, m, "aggregate"), bson.A{
		bson.D{{Key: "$match", Value: bson.D{
			{Key: "meta.device", Value: "press-07"},
			{Key: "ts", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(from)}, {Key: "$lt", Value: bson.NewDateTimeFromTime(to)}}},
			{Key: "fields.pressure", Value: bson.D{{Key: "$type", Value: "number"}}},
		}}},
		bson.D{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{{Key: "$dateTrunc", Value: bson.D{{Key: "date", Value: "$ts"}, {Key: "unit", Value: "minute"}, {Key: "binSize", Value: int32(15)}}}}},
			{Key: "min", Value: bson.D{{Key: "$min", Value: "$fields.pressure"}}},
			{Key: "avg", Value: bson.D{{Key: "$avg", Value: "$fields.pressure"}}},
			{Key: "max", Value: bson.D{{Key: "$max", Value: "$fields.pressure"}}},
			{Key: "count", Value: bson.D{{Key: "$count", Value: bson.D{}}}},
		}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "_id", Value: int32(1)}}}},
	})
}

func TestRangeCommand(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	from := t0
	to := t0.Add(time.Hour)
	if _, err := s.Range(testCtx(t), topic, "press-07", from, to, 10); err != nil {
		t.Fatal(err)
	}
	cmd := onlyCommand(t, m, "find")
	for _, c := range []struct {
		key  string
		want any
	}{
		{"filter", bson.D{
			{Key: "meta.device", Value: "press-07"},
			{Key: "ts", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(from)}, {Key: "$lt", Value: bson.NewDateTimeFromTime(to)}}},
		}},
		{"sort", bson.D{{Key: "ts", Value: int32(1)}}},
		{"limit", int64(10)},
	} {
		if got := field(t, cmd, c.key); got != extJSON(t, c.want) {
			t.Errorf("find %s: %s, want %s", c.key, got, extJSON(t, c.want))
		}
	}
}

func TestReconcile(t *testing.T) {
	const ns = "factorywire." + topic
	ts := func(g string, ttl int64) collInfo {
		span := map[string]int64{"seconds": 3600, "minutes": 86400, "hours": 2592000}[g]
		return collInfo{typ: "timeseries", timeField: "ts", metaField: "meta", granularity: g, bucketMaxSpan: span, expireAfter: ttl}
	}
	custom := collInfo{typ: "timeseries", timeField: "ts", metaField: "meta", bucketMaxSpan: 7200, bucketRounding: 7200, expireAfter: -1}
	for _, c := range []struct {
		name       string
		spec       CollectionSpec
		info       collInfo
		wantTTL    int64
		wantChange bool
		wantErr    error
		wantMsg    string
	}{
		{"same", CollectionSpec{Name: topic, ExpireAfter: time.Hour}, ts("seconds", 3600), 3600, false, nil, ""},
		{"same, forever", CollectionSpec{Name: topic}, ts("seconds", -1), 0, false, nil, ""},
		{"TTL shorter", CollectionSpec{Name: topic, ExpireAfter: time.Hour}, ts("seconds", 7200), 3600, true, nil, ""},
		{"TTL added", CollectionSpec{Name: topic, ExpireAfter: time.Hour}, ts("seconds", -1), 3600, true, nil, ""},
		{"TTL removed", CollectionSpec{Name: topic}, ts("seconds", 3600), 0, true, nil, ""},
		{"minutes", CollectionSpec{Name: topic, Granularity: "minutes"}, ts("minutes", -1), 0, false, nil, ""},
		{"custom same", CollectionSpec{Name: topic, BucketMaxSpan: 2 * time.Hour}, custom, 0, false, nil, ""},
		{"plain collection", CollectionSpec{Name: topic}, collInfo{typ: "collection", expireAfter: -1}, 0, false, ErrNotTimeSeries,
			"collection factorywire.plant-a.press: is a collection, not a time-series collection"},
		{"view", CollectionSpec{Name: topic}, collInfo{typ: "view", expireAfter: -1}, 0, false, ErrNotTimeSeries, "is a view"},
		{"timeField", CollectionSpec{Name: topic}, collInfo{typ: "timeseries", timeField: "time", metaField: "meta", granularity: "seconds"}, 0, false, ErrShape,
			`timeField "time", want "ts"`},
		{"metaField", CollectionSpec{Name: topic}, collInfo{typ: "timeseries", timeField: "ts", metaField: "tags", granularity: "seconds"}, 0, false, ErrShape,
			`metaField "tags", want "meta"`},
		{"no metaField", CollectionSpec{Name: topic}, collInfo{typ: "timeseries", timeField: "ts", granularity: "seconds"}, 0, false, ErrShape,
			`metaField "", want "meta"`},
		{"granularity coarser configured", CollectionSpec{Name: topic, Granularity: "hours"}, ts("seconds", -1), 0, false, ErrShape,
			`has granularity "seconds", configured "hours"; MongoDB can only increase a granularity`},
		{"granularity finer configured", CollectionSpec{Name: topic}, ts("minutes", -1), 0, false, ErrShape,
			`configure granularity "minutes", or migrate`},
		{"granularity on custom", CollectionSpec{Name: topic}, custom, 0, false, ErrShape, "configure bucket max span 7200s"},
		{"custom on granularity", CollectionSpec{Name: topic, BucketMaxSpan: time.Hour}, ts("seconds", -1), 0, false, ErrShape, `has granularity "seconds", configured custom bucketing of 3600s`},
		{"custom other span", CollectionSpec{Name: topic, BucketMaxSpan: time.Hour}, custom, 0, false, ErrShape, "bucketMaxSpanSeconds 7200"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := c.spec.validate()
			if err != nil {
				t.Fatal(err)
			}
			ttl, change, err := reconcile(ns, c.spec, g, c.info)
			if c.wantErr != nil {
				var ce *CollectionError
				if !errors.Is(err, c.wantErr) || !errors.As(err, &ce) || ce.Namespace != ns || !strings.Contains(err.Error(), c.wantMsg) {
					t.Fatalf("reconcile: %v, want a *CollectionError for %s wrapping %v saying %q", err, ns, c.wantErr, c.wantMsg)
				}
				return
			}
			if err != nil || ttl != c.wantTTL || change != c.wantChange {
				t.Fatalf("reconcile: %d, %v, %v; want %d, %v", ttl, change, err, c.wantTTL, c.wantChange)
			}
		})
	}
}

func TestParseCollInfo(t *testing.T) {
	// listCollections options as MongoDB 8.0 reports them.
	opts, err := bson.Marshal(bson.D{
		{Key: "timeseries", Value: bson.D{
			{Key: "timeField", Value: "ts"}, {Key: "metaField", Value: "meta"},
			{Key: "granularity", Value: "minutes"}, {Key: "bucketMaxSpanSeconds", Value: int32(86400)},
		}},
		{Key: "expireAfterSeconds", Value: int64(604800)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := parseCollInfo("timeseries", opts)
	want := collInfo{typ: "timeseries", timeField: "ts", metaField: "meta", granularity: "minutes", bucketMaxSpan: 86400, expireAfter: 604800}
	if got != want {
		t.Fatalf("parseCollInfo: %+v, want %+v", got, want)
	}
	if got := parseCollInfo("collection", bson.Raw(nil)); got != (collInfo{typ: "collection", expireAfter: -1}) {
		t.Fatalf("parseCollInfo of a plain collection: %+v", got)
	}
}

type netErr struct{ timeout bool }

func (e netErr) Error() string   { return "network" }
func (e netErr) Timeout() bool   { return e.timeout }
func (e netErr) Temporary() bool { return false }

var _ net.Error = netErr{}

func TestIsTransient(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("x"), false},
		{"canceled", fmt.Errorf("insert: %w", context.Canceled), false},
		{"deadline", fmt.Errorf("insert: %w", context.DeadlineExceeded), true},
		{"net timeout", netErr{timeout: true}, true},
		{"NotWritablePrimary", mongo.CommandError{Code: 10107, Name: "NotWritablePrimary"}, true},
		{"PrimarySteppedDown", fmt.Errorf("wrapped: %w", mongo.CommandError{Code: 189}), true},
		{"ShutdownInProgress", mongo.CommandError{Code: 91}, true},
		{"MaxTimeMSExpired", mongo.CommandError{Code: 50}, true},
		{"RetryableWriteError label", mongo.CommandError{Code: 1, Labels: []string{"RetryableWriteError"}}, true},
		{"TransientTransactionError label", mongo.CommandError{Code: 1, Labels: []string{"TransientTransactionError"}}, true},
		{"NetworkError label", mongo.CommandError{Labels: []string{"NetworkError"}}, true},
		{"duplicate key", mongo.CommandError{Code: 11000}, false},
		{"BadValue", mongo.CommandError{Code: 2}, false},
		{"NotImplemented", mongo.CommandError{Code: 238}, false},
		{"write concern timeout", mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64, Name: "WriteConcernFailed"}}, true},
		{"write concern unsatisfiable", mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 100}}, false},
		{"write error WriteConflict", mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 112}}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := IsTransient(c.err); got != c.want {
				t.Fatalf("IsTransient(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

// TestCommandErrors: a command refused for a cause retrying cannot
// remove is a *CommandError naming the namespace, the command and the
// fix; anything else is a plain wrapped error that IsTransient judges.
func TestCommandErrors(t *testing.T) {
	s := New(&mongo.Client{}, DefaultOptions())
	for _, c := range []struct {
		command string
		err     error
		code    int    // 0: not a *CommandError
		fix     string // in the message
	}{
		{"insert", mongo.CommandError{Code: 13, Name: "Unauthorized", Message: "not authorized on factorywire to execute command"}, 13, "readWrite on its database"},
		{"create", mongo.CommandError{Code: 40415, Name: "Location40415", Message: "BSON field 'create.timeseries.bucketMaxSpanSeconds' is an unknown field."}, 40415, "6.3 or later"},
		{"create", mongo.CommandError{Code: 72, Name: "InvalidOptions"}, 72, "configure a granularity instead"},
		{"create", mongo.CommandError{Code: 5510500, Message: "Timeseries 'bucketMaxSpanSeconds' is not configurable to a value other than the default"}, 5510500, "6.3 or later"},
		{"createIndexes", mongo.CommandError{Code: 85, Name: "IndexOptionsConflict"}, 85, "dropIndex"},
		{"createIndexes", mongo.CommandError{Code: 86, Name: "IndexKeySpecsConflict"}, 86, "dropIndex"},
		{"createIndexes", mongo.CommandError{Code: 67, Name: "CannotCreateIndex"}, 67, "cannot create the index"},
		{"collMod", mongo.CommandError{Code: 2, Name: "BadValue"}, 2, "check the configuration"},
		{"create", mongo.CommandError{Code: 238, Name: "NotImplemented"}, 238, "stand-in mode"},
		{"insert", mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 79, Name: "UnknownReplWriteConcern"}}, 79, "configure majority"},
		// Retried, not refused: a primary stepping down, a write error of
		// one document, a network error.
		{"insert", mongo.CommandError{Code: 189, Name: "PrimarySteppedDown"}, 0, ""},
		{"insert", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 2}}}}, 0, ""},
		{"find", fmt.Errorf("connection reset"), 0, ""},
	} {
		err := s.commandError(topic, c.command, "doing it", c.err)
		var ce *CommandError
		if got := errors.As(err, &ce); got != (c.code != 0) {
			t.Errorf("%s %v: *CommandError %v, want %v: %v", c.command, c.err, got, c.code != 0, err)
			continue
		}
		if !strings.Contains(err.Error(), c.err.Error()) || !errors.As(err, new(mongo.ServerError)) != (c.command == "find") {
			t.Errorf("%v does not wrap %v", err, c.err)
		}
		if c.code == 0 {
			continue
		}
		ns := s.namespace(topic)
		if ce.Code != c.code || ce.Namespace != ns || !strings.Contains(err.Error(), ns) || !strings.Contains(err.Error(), c.command) ||
			!strings.Contains(err.Error(), c.fix) {
			t.Errorf("%s %v: %v (code %d), want code %d naming %s, %s and %q", c.command, c.err, err, ce.Code, c.code, ns, c.command, c.fix)
		}
	}
}
