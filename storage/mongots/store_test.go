package mongots

// Tests against the embedded FerretDB: everything that runs the same on
// it as on MongoDB. What FerretDB lacks is asserted command by command in
// commands_test.go and run for real in real_test.go.

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/factorywire/factorywire/devices"
)

const topic = "plant-a.press"

func TestWriteRangeRoundTrip(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	all := devices.Sample{
		Factory: "plant-a", Class: "press", Device: "press-07",
		Time: t0.Add(1500 * time.Millisecond), Seq: 42,
		Tags:  map[string]string{"line": "line-3", "asset_id": "P-1107"},
		Units: map[string]string{"pressure": "bar", "setpoint": "bar", "temperature": "°C"},
		Fields: map[string]devices.Value{
			"running":   devices.BoolValue(true),
			"offset":    devices.Int64Value(-5),
			"cycles":    devices.Uint64Value(1 << 40),
			"pressure":  devices.Float64Value(12.5),
			"setpoint":  devices.Float64Value(2),
			"model":     devices.StringValue("PX-200 \"heavy\""),
			"ambient_k": devices.Float64Value(293.15),
		},
		Errors: map[string]string{"temperature": "modbus exception 2 (illegal data address)"},
	}
	docs := []Doc{
		{Sample: sample("press-07", 3, map[string]devices.Value{"pressure": devices.Float64Value(3)}), Partition: 1, Offset: 12},
		{Sample: all, Partition: 1, Offset: 10},
		{Sample: sample("press-01", 2, nil), Partition: 0, Offset: 5},
		{Sample: sample("press-07", 0, map[string]devices.Value{"pressure": devices.Float64Value(0)}), Partition: 1, Offset: 9},
	}
	res, err := s.Write(ctx, topic, docs)
	if err != nil || res.Inserted != len(docs) || len(res.Failed) != 0 {
		t.Fatalf("Write: %+v, %v; want %d inserted", res, err, len(docs))
	}

	// Sent sorted by device, then time, unordered.
	insert := onlyCommand(t, m, "insert")
	if got := field(t, insert, "ordered"); got != extJSON(t, false) {
		t.Fatalf("insert ordered: %s, want false", got)
	}
	var sent []string
	vals, _ := insert.Lookup("documents").Array().Values()
	for _, v := range vals {
		d := v.Document()
		sent = append(sent, d.Lookup("meta", "device").StringValue()+"@"+d.Lookup("src", "o").String())
	}
	if want := []string{`press-01@{"$numberLong":"5"}`, `press-07@{"$numberLong":"9"}`, `press-07@{"$numberLong":"10"}`, `press-07@{"$numberLong":"12"}`}; !slices.Equal(sent, want) {
		t.Fatalf("insert order %v, want %v", sent, want)
	}

	// The stored document, key by key and type by type.
	raw, err := s.Database().Collection(topic).FindOne(ctx, bson.D{{Key: "src.o", Value: int64(10)}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	elems, _ := raw.Elements()
	var keys []string
	for _, e := range elems {
		keys = append(keys, e.Key())
	}
	if want := []string{"_id", "ts", "meta", "seq", "src", "fields", "error_count", "errors"}; !slices.Equal(keys, want) {
		t.Fatalf("document keys %v, want %v", keys, want)
	}
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"ts"}, bson.NewDateTimeFromTime(all.Time)},
		{[]string{"meta"}, bson.D{{Key: "factory", Value: "plant-a"}, {Key: "class", Value: "press"}, {Key: "device", Value: "press-07"},
			{Key: "tags", Value: bson.D{{Key: "asset_id", Value: "P-1107"}, {Key: "line", Value: "line-3"}}},
			{Key: "units", Value: bson.D{{Key: "pressure", Value: "bar"}, {Key: "setpoint", Value: "bar"}, {Key: "temperature", Value: "°C"}}}}},
		{[]string{"seq"}, int64(42)},
		{[]string{"src"}, bson.D{{Key: "p", Value: int32(1)}, {Key: "o", Value: int64(10)}}},
		{[]string{"fields"}, bson.D{
			{Key: "ambient_k", Value: 293.15},
			{Key: "cycles", Value: int64(1 << 40)},
			{Key: "model", Value: "PX-200 \"heavy\""},
			{Key: "offset", Value: int64(-5)},
			{Key: "pressure", Value: 12.5},
			{Key: "running", Value: true},
			{Key: "setpoint", Value: 2.0},
		}},
		{[]string{"error_count"}, int32(1)},
		{[]string{"errors"}, bson.D{{Key: "temperature", Value: "modbus exception 2 (illegal data address)"}}},
	} {
		if got, want := field(t, raw, c.path...), extJSON(t, c.want); got != want {
			t.Errorf("%v: %s, want %s", c.path, got, want)
		}
	}
	// errors, tags and units are omitted when empty.
	raw, err = s.Database().Collection(topic).FindOne(ctx, bson.D{{Key: "src.o", Value: int64(5)}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := field(t, raw, "meta"), extJSON(t, bson.D{{Key: "factory", Value: "plant-a"}, {Key: "class", Value: "press"}, {Key: "device", Value: "press-01"}}); got != want {
		t.Fatalf("meta of a sample without tags and units: %s, want %s", got, want)
	}
	if _, err := raw.LookupErr("errors"); err == nil {
		t.Fatalf("document without errors has an errors key: %s", raw)
	}
	if got := field(t, raw, "error_count"); got != extJSON(t, int32(0)) {
		t.Fatalf("document without errors: error_count %s, want 0", got)
	}

	// Range: ts ascending, [from, to), limit.
	for _, c := range []struct {
		name     string
		from, to time.Time
		limit    int
		want     []devices.Sample
	}{
		{"all", t0, t0.Add(time.Hour), 0, []devices.Sample{docs[3].Sample, all, docs[0].Sample}},
		{"limit", t0, t0.Add(time.Hour), 2, []devices.Sample{docs[3].Sample, all}},
		{"to excluded", t0, t0.Add(3 * time.Second), 0, []devices.Sample{docs[3].Sample, all}},
		{"from included", t0.Add(1500 * time.Millisecond), t0.Add(time.Hour), 0, []devices.Sample{all, docs[0].Sample}},
		{"empty", t0.Add(-time.Hour), t0, 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Range(ctx, topic, "press-07", c.from, c.to, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("Range gave %d samples, want %d: %+v", len(got), len(c.want), got)
			}
			for i := range got {
				if err := sameSample(got[i], c.want[i]); err != nil {
					t.Errorf("sample %d: %v", i, err)
				}
			}
		})
	}
}

func TestWriteChunks(t *testing.T) {
	for _, c := range []struct {
		name      string
		maxDocs   int
		maxBytes  int
		wantSizes []int
	}{
		{"by count", 3, DefaultMaxBatchBytes, []int{3, 3, 3, 1}},
		// Two documents fit in 2.5 documents' bytes, a third does not.
		{"by bytes", 1000, -1, []int{2, 2, 2, 2, 2}},
		{"larger than bound goes alone", 1000, 10, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"one command", 1000, DefaultMaxBatchBytes, []int{10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			docs := pressureDocs([]string{"press-01", "press-02"}, 5)
			size := docSize(t, docs)
			opts, _ := standIn()
			opts.MaxBatchDocs, opts.MaxBatchBytes = c.maxDocs, c.maxBytes
			if c.maxBytes < 0 {
				opts.MaxBatchBytes = size * 5 / 2
			}
			s, m := ferretStore(t, opts)
			ctx := testCtx(t)
			res, err := s.Write(ctx, topic, docs)
			if err != nil || res.Inserted != len(docs) {
				t.Fatalf("Write: %+v, %v", res, err)
			}
			var sizes []int
			for _, cmd := range m.Commands("insert") {
				vals, _ := cmd.Lookup("documents").Array().Values()
				sizes = append(sizes, len(vals))
			}
			if !slices.Equal(sizes, c.wantSizes) {
				t.Fatalf("insert commands of %v documents, want %v", sizes, c.wantSizes)
			}
			n, err := s.Database().Collection(topic).CountDocuments(ctx, bson.D{})
			if err != nil || n != int64(len(docs)) {
				t.Fatalf("collection holds %d documents (%v), want %d", n, err, len(docs))
			}
		})
	}
}

// docSize returns the encoded size of docs[0], checking that every
// document of docs has it.
func docSize(t *testing.T, docs []Doc) int {
	t.Helper()
	size := -1
	for i := range docs {
		b, err := appendDoc(nil, &docs[i])
		if err != nil {
			t.Fatal(err)
		}
		if size >= 0 && len(b) != size {
			t.Fatalf("document %d has %d bytes, document 0 %d: the test needs equal sizes", i, len(b), size)
		}
		size = len(b)
	}
	return size
}

func TestWriteDocumentErrors(t *testing.T) {
	opts, _ := standIn()
	opts.MaxBatchDocs = 2 // failures in later chunks map back to their index
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	// A unique index someone added: the server refuses a second document
	// with the same device and seq, a write error for that document only.
	_, err := s.Database().Collection(topic).Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "meta.device", Value: 1}, {Key: "seq", Value: 1}},
		Options: options.Index().SetUnique(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	at := func(device string, seq, second int, fields map[string]devices.Value) devices.Sample {
		smp := sample(device, second, fields)
		smp.Seq = uint64(seq)
		return smp
	}
	f := func(x float64) map[string]devices.Value {
		return map[string]devices.Value{"pressure": devices.Float64Value(x)}
	}
	docs := []Doc{
		{Sample: at("press-02", 1, 1, f(1)), Offset: 1},
		{Sample: at("press-01", 5, 5, f(math.Inf(1))), Offset: 2},
		{Sample: at("", 6, 6, f(6)), Offset: 3}, // no device
		{Sample: at("press-01", 4, 4, map[string]devices.Value{"cycles": devices.Uint64Value(math.MaxUint64)}), Offset: 4},
		{Sample: at("press-01", 5, 6, f(6)), Offset: 5}, // seq 5 again
		{Sample: at("press-01", 7, 7, f(7)), Offset: -1},
		{Sample: at("press-01", 8, 8, f(math.NaN())), Offset: 7},
		{Sample: at("press-03", 9, 9, map[string]devices.Value{"model": devices.StringValue(strings.Repeat("x", MaxDocBytes))}), Offset: 8},
	}
	res, err := s.Write(ctx, topic, docs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 4 {
		t.Errorf("inserted %d, want 4", res.Inserted)
	}
	want := []struct {
		index int
		code  int
		msg   string
	}{
		{2, 0, "device"},
		{4, 11000, "E11000 duplicate key error"},
		{5, 0, "negative source partition 0 or offset -1"},
		{7, 0, "a time-series measurement may have"},
	}
	if len(res.Failed) != len(want) {
		t.Fatalf("failed %+v, want %d", res.Failed, len(want))
	}
	for i, w := range want {
		f := res.Failed[i]
		if f.Index != w.index || f.Code != w.code || !strings.Contains(f.Message, w.msg) || f.Transient || f.Doc.Offset != docs[w.index].Offset {
			t.Errorf("failure %d: %+v, want index %d, code %d, message with %q, not transient", i, f, w.index, w.code, w.msg)
		}
		wantErr := ErrInvalidDoc
		if w.index == 7 {
			wantErr = ErrTooLarge
		}
		if w.code == 0 && (!strings.Contains(f.Message, wantErr.Error()) || f.Err != wantErr) {
			t.Errorf("failure %d: %q (%v) does not say %q", i, f.Message, f.Err, wantErr)
		}
		if w.code != 0 && w.code != codeBSONObjectTooLarge && f.Err != nil {
			t.Errorf("failure %d: a server's write error has Err %v", i, f.Err)
		}
	}
	if n := len(m.Commands("insert")); n != 3 { // 5 valid documents, 2 per command
		t.Fatalf("%d insert commands, want 3", n)
	}

	// Values without a faithful BSON form are stored under errors.
	got, err := s.Range(ctx, topic, "press-01", t0, t0.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantErrs := []map[string]string{
		{"cycles": OverflowPrefix + "18446744073709551615"},
		{"pressure": "devices: value is not a finite number: +Inf"},
		{"pressure": "devices: value is not a finite number: NaN"},
	}
	if len(got) != len(wantErrs) {
		t.Fatalf("Range: %d samples, want %d", len(got), len(wantErrs))
	}
	for i, smp := range got {
		if len(smp.Fields) != 0 || !maps.Equal(smp.Errors, wantErrs[i]) {
			t.Errorf("sample %d: fields %v, errors %q; want errors %q", i, smp.Fields, smp.Errors, wantErrs[i])
		}
	}
	// No field has a value: the document has no fields key.
	raw, err := s.Database().Collection(topic).FindOne(ctx, bson.D{{Key: "src.o", Value: int64(7)}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.LookupErr("fields"); err == nil || field(t, raw, "error_count") != extJSON(t, int32(1)) {
		t.Fatalf("document without values: %s; want no fields and error_count 1", raw)
	}
}

// TestAppendBSONTagsAndUnits: tags and units go under meta, sorted, and
// Write refuses those no decoded sample has before sending them.
func TestAppendBSONTagsAndUnits(t *testing.T) {
	smp := sample("press-07", 1, map[string]devices.Value{"pressure": devices.Float64Value(1)})
	smp.Tags = map[string]string{"zone": "z", "line": "line-3"}
	smp.Units = map[string]string{"pressure": "bar"}
	d := Doc{Sample: smp}
	b, err := d.AppendBSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := bson.D{{Key: "factory", Value: "plant-a"}, {Key: "class", Value: "press"}, {Key: "device", Value: "press-07"},
		{Key: "tags", Value: bson.D{{Key: "line", Value: "line-3"}, {Key: "zone", Value: "z"}}},
		{Key: "units", Value: bson.D{{Key: "pressure", Value: "bar"}}}}
	if got := field(t, bson.Raw(b), "meta"); got != extJSON(t, want) {
		t.Fatalf("meta %s, want %s", got, extJSON(t, want))
	}
	many := map[string]string{}
	for i := range devices.MaxTags + 1 {
		many[fmt.Sprintf("t%02d", i)] = "x"
	}
	for _, c := range []struct {
		name        string
		tags, units map[string]string
		want        string
	}{
		{"tag key with a dot", map[string]string{"a.b": "x"}, nil, `tag "a.b": invalid tag key "a.b"`},
		{"tag key with a dollar", map[string]string{"$set": "x"}, nil, `tag "$set": invalid tag key "$set"`},
		{"empty tag value", map[string]string{"line": ""}, nil, `tag "line": value is empty`},
		{"too many tags", many, nil, "33 tags, at most 32"},
		{"unit of a bad field name", nil, map[string]string{"a.b": "V"}, `field name "a.b" cannot be a MongoDB field name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Doc{Sample: smp}
			d.Sample.Tags, d.Sample.Units = c.tags, c.units
			out, err := d.AppendBSON([]byte("x"))
			if !errors.Is(err, ErrInvalidDoc) || !strings.Contains(err.Error(), c.want) || string(out) != "x" {
				t.Fatalf("AppendBSON: %q, %v; want ErrInvalidDoc with %q and dst unchanged", out, err, c.want)
			}
		})
	}
}

func TestOffsetsRoundTrip(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	const group = "sink/blue" // a group may hold '/'
	got, err := s.LoadOffsets(ctx, group, topic)
	if err != nil || len(got) != 0 {
		t.Fatalf("LoadOffsets before any save: %v, %v; want empty", got, err)
	}
	steps := []struct {
		save map[int32]int64
		want map[int32]int64
	}{
		{map[int32]int64{0: 10, 3: 7}, map[int32]int64{0: 10, 3: 7}},
		{map[int32]int64{0: 12}, map[int32]int64{0: 12, 3: 7}},
		{nil, map[int32]int64{0: 12, 3: 7}},
		{map[int32]int64{1: 0, 3: 9}, map[int32]int64{0: 12, 1: 0, 3: 9}},
	}
	for i, st := range steps {
		if err := s.SaveOffsets(ctx, group, topic, st.save); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := s.LoadOffsets(ctx, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		if !mapsEqual(got, st.want) {
			t.Fatalf("step %d: loaded %v, want %v", i, got, st.want)
		}
	}
	// Other groups and topics are apart.
	if err := s.SaveOffsets(ctx, "sink", topic, map[int32]int64{0: 99}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveOffsets(ctx, group, "plant-b.press", map[int32]int64{0: 98}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadOffsets(ctx, group, topic); !mapsEqual(got, steps[len(steps)-1].want) {
		t.Fatalf("after other saves, loaded %v", got)
	}
	if got, _ := s.LoadOffsets(ctx, "sink", topic); !mapsEqual(got, map[int32]int64{0: 99}) {
		t.Fatalf("group sink loaded %v", got)
	}

	// The checkpoint's documents and write concern.
	raw, err := s.Database().Collection(OffsetsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: "sink/blue/plant-a.press/3"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		want any
	}{{"group", group}, {"topic", topic}, {"partition", int32(3)}, {"offset", int64(9)}} {
		if got := field(t, raw, c.key); got != extJSON(t, c.want) {
			t.Errorf("%s: %s, want %s", c.key, got, extJSON(t, c.want))
		}
	}
	if at, ok := raw.Lookup("updated_at").TimeOK(); !ok || time.Since(at) > time.Hour || time.Since(at) < -time.Hour {
		t.Errorf("updated_at %s, want about now", raw.Lookup("updated_at"))
	}
	for _, cmd := range m.Commands("update") {
		if got := field(t, cmd, "writeConcern", "w"); got != extJSON(t, "majority") {
			t.Fatalf("update writeConcern.w %s, want majority", got)
		}
		if got := field(t, cmd, "updates", "0", "upsert"); got != extJSON(t, true) {
			t.Fatalf("update upsert %s, want true", got)
		}
	}

	for _, c := range []struct{ group, topic string }{{"", topic}, {group, ""}, {group, "a/b"}} {
		if _, err := s.LoadOffsets(ctx, c.group, c.topic); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("LoadOffsets(%q, %q): %v, want ErrInvalidArgument", c.group, c.topic, err)
		}
	}
	if err := s.SaveOffsets(ctx, group, topic, map[int32]int64{0: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SaveOffsets of offset -1: %v, want ErrInvalidArgument", err)
	}
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestCheckpointAttempted(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	group := "sink"
	// attempted before any saved offset, then raised, never lowered.
	for _, step := range []map[int32]int64{{0: 10, 1: 20}, {0: 15}, {0: 12, 1: 19}} {
		if err := s.MarkAttempted(ctx, group, topic, step); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int32]Checkpoint{0: {Next: -1, Attempted: 15}, 1: {Next: -1, Attempted: 20}}
	got, err := s.LoadCheckpoints(ctx, group, topic)
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("LoadCheckpoints: %v, %v; want %v", got, err, want)
	}
	if got, err := s.LoadOffsets(ctx, group, topic); err != nil || len(got) != 0 {
		t.Fatalf("LoadOffsets with only attempted marks: %v, %v; want none", got, err)
	}
	if err := s.SaveOffsets(ctx, group, topic, map[int32]int64{0: 16}); err != nil {
		t.Fatal(err)
	}
	want[0] = Checkpoint{Next: 16, Attempted: 15}
	if got, err := s.LoadCheckpoints(ctx, group, topic); err != nil || !maps.Equal(got, want) {
		t.Fatalf("LoadCheckpoints: %v, %v; want %v", got, err, want)
	}

	// The exact commands: one unordered bulk update with upsert, $max of
	// attempted; majority write concern, majority read concern.
	m.Reset()
	if err := s.MarkAttempted(ctx, group, topic, map[int32]int64{3: 7}); err != nil {
		t.Fatal(err)
	}
	up := onlyCommand(t, m, "update")
	u := up.Lookup("updates").Array().Index(0).Document()
	if got, want := extJSON(t, u.Lookup("q")), extJSON(t, bson.D{{Key: "_id", Value: "sink/" + topic + "/3"}}); got != want {
		t.Errorf("update q %s, want %s", got, want)
	}
	if got := extJSON(t, u.Lookup("u", "$max")); got != extJSON(t, bson.D{{Key: "attempted", Value: int64(7)}}) {
		t.Errorf("update $max %s", got)
	}
	if got := field(t, up, "writeConcern"); got != extJSON(t, bson.D{{Key: "w", Value: "majority"}}) {
		t.Errorf("writeConcern %s, want majority", got)
	}
	if _, err := s.LoadCheckpoints(ctx, group, topic); err != nil {
		t.Fatal(err)
	}
	if got := field(t, onlyCommand(t, m, "find"), "readConcern"); got != extJSON(t, bson.D{{Key: "level", Value: "majority"}}) {
		t.Errorf("find readConcern %s, want majority", got)
	}
}

// TestCheckpointTopics: MarkTopicsAttempted and SaveTopicOffsets write
// several topics' entries in one command, each entry as the single-topic
// calls write it; LowerAttempted lowers only marks nobody moved.
func TestCheckpointTopics(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	const group, other = "sink", "plant-a.oven"
	if err := s.MarkTopicsAttempted(ctx, group, map[string]map[int32]int64{topic: {0: 9, 1: 4}, other: {2: 30}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkTopicsAttempted(ctx, group, map[string]map[int32]int64{topic: {0: 5}, other: {2: 31}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTopicOffsets(ctx, group, map[string]map[int32]int64{topic: {0: 8}, other: {2: 12}}); err != nil {
		t.Fatal(err)
	}
	ups := m.Commands("update")
	if len(ups) != 3 {
		t.Fatalf("%d update commands, want one per call", len(ups))
	}
	u := ups[0].Lookup("updates").Array()
	if n, _ := u.Values(); len(n) != 3 {
		t.Fatalf("first update holds %d statements, want 3", len(n))
	}
	for i, id := range []string{"sink/" + other + "/2", "sink/" + topic + "/0", "sink/" + topic + "/1"} {
		if got := extJSON(t, u.Index(uint(i)).Document().Lookup("q")); got != extJSON(t, bson.D{{Key: "_id", Value: id}}) {
			t.Errorf("statement %d: q %s, want _id %s (topics, then partitions, in order)", i, got, id)
		}
	}
	for tp, want := range map[string]map[int32]Checkpoint{
		topic: {0: {Next: 8, Attempted: 9}, 1: {Next: -1, Attempted: 4}},
		other: {2: {Next: 12, Attempted: 31}},
	} {
		if got, err := s.LoadCheckpoints(ctx, group, tp); err != nil || !maps.Equal(got, want) {
			t.Errorf("LoadCheckpoints %s: %v, %v; want %v", tp, got, err, want)
		}
	}
	// Lowering: only a mark still at From moves (another member may have
	// raised it since), and no entry is created.
	n, err := s.LowerAttempted(ctx, group, []MarkLowering{
		{Topic: topic, Partition: 0, From: 9, To: 7},
		{Topic: other, Partition: 2, From: 30, To: 11}, // raised to 31 since
		{Topic: topic, Partition: 5, From: 3, To: 2},   // no entry
	})
	if err != nil || n != 1 {
		t.Fatalf("LowerAttempted: %d, %v; want 1 lowered", n, err)
	}
	for tp, want := range map[string]map[int32]Checkpoint{
		topic: {0: {Next: 8, Attempted: 7}, 1: {Next: -1, Attempted: 4}},
		other: {2: {Next: 12, Attempted: 31}},
	} {
		if got, err := s.LoadCheckpoints(ctx, group, tp); err != nil || !maps.Equal(got, want) {
			t.Errorf("after LowerAttempted, LoadCheckpoints %s: %v, %v; want %v", tp, got, err, want)
		}
	}
	if _, err := s.LowerAttempted(ctx, group, []MarkLowering{{Topic: topic, Partition: 0, From: 7, To: 8}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("LowerAttempted upwards: %v, want ErrInvalidArgument", err)
	}
	bad := map[string]map[int32]int64{topic: {0: 1}, "a/b": {0: 1}}
	if err := s.SaveTopicOffsets(ctx, group, bad); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SaveTopicOffsets with topic a/b: %v, want ErrInvalidArgument", err)
	}
}

func TestLegacyIndexDropped(t *testing.T) {
	opts, rec := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	if err := s.Database().CreateCollection(ctx, topic); err != nil {
		t.Fatal(err)
	}
	legacy := mongo.IndexModel{Keys: bson.D{{Key: "src.p", Value: int32(1)}, {Key: "src.o", Value: int32(-1)}}}
	if _, err := s.Database().Collection(topic).Indexes().CreateOne(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
			t.Fatal(err)
		}
	}
	drops := m.Commands("dropIndexes")
	if len(drops) != 2 {
		t.Fatalf("%d dropIndexes, want one per Ensure", len(drops))
	}
	assertCommand(t, drops[0], bson.D{{Key: "dropIndexes", Value: topic}, {Key: "index", Value: LegacyIndexSource}})
	idx, err := s.Database().Collection(topic).Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range idx {
		if ix.Name == LegacyIndexSource {
			t.Fatalf("legacy index still there: %+v", idx)
		}
	}
	logged := 0
	for _, msg := range rec.messages() {
		if strings.Contains(msg, "dropped the legacy index") {
			logged++
		}
	}
	if logged != 1 {
		t.Fatalf("legacy index drop logged %d times, want once: %q", logged, rec.messages())
	}
}

func TestEnsureRefusesPlainCollection(t *testing.T) {
	s, m := ferretStore(t, DefaultOptions())
	ctx := testCtx(t)
	if err := s.Database().CreateCollection(ctx, topic); err != nil {
		t.Fatal(err)
	}
	m.Reset()
	err := s.Ensure(ctx, CollectionSpec{Name: topic, ExpireAfter: time.Hour})
	var ce *CollectionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrNotTimeSeries) {
		t.Fatalf("Ensure on a plain collection: %v, want a *CollectionError wrapping ErrNotTimeSeries", err)
	}
	ns := s.Database().Name() + "." + topic
	if ce.Namespace != ns || !strings.Contains(err.Error(), ns) || !strings.Contains(err.Error(), "is a collection, not a time-series collection") {
		t.Fatalf("error %q does not name %s and what differs", err, ns)
	}
	for _, c := range m.All() {
		if c.Name != "listCollections" {
			t.Fatalf("Ensure sent %s after finding the wrong shape: %s", c.Name, c.Doc)
		}
	}
}

func TestEnsureStandIn(t *testing.T) {
	opts, rec := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	spec := CollectionSpec{Name: topic, Granularity: GranularityMinutes, ExpireAfter: 24 * time.Hour}
	for i := range 2 { // idempotent
		if err := s.Ensure(ctx, spec); err != nil {
			t.Fatalf("Ensure %d: %v", i, err)
		}
	}
	if got := field(t, onlyCommand(t, m, "create"), "create"); got != extJSON(t, topic) {
		t.Fatalf("create %s", got)
	}
	for _, cmd := range m.Commands("create") {
		for _, key := range []string{"timeseries", "expireAfterSeconds"} {
			if _, err := cmd.LookupErr(key); err == nil {
				t.Fatalf("stand-in create has %s: %s", key, cmd)
			}
		}
	}
	specs, err := s.Database().ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: topic}})
	if err != nil || len(specs) != 1 || specs[0].Type != "collection" {
		t.Fatalf("listCollections: %+v, %v; want one plain collection", specs, err)
	}
	idx, err := s.Database().Collection(topic).Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, ix := range idx {
		keys[ix.Name] = extJSON(t, ix.KeysDocument)
	}
	wantKeys := map[string]string{
		"_id_":          extJSON(t, bson.D{{Key: "_id", Value: int32(1)}}),
		IndexDeviceTime: extJSON(t, bson.D{{Key: "meta.device", Value: int32(1)}, {Key: "ts", Value: int32(-1)}}),
	}
	if len(keys) != len(wantKeys) {
		t.Fatalf("indexes %v, want %v", keys, wantKeys)
	}
	for name, k := range wantKeys {
		if keys[name] != k {
			t.Errorf("index %s: %s, want %s", name, keys[name], k)
		}
	}
	warned := 0
	for _, msg := range rec.messages() {
		if strings.HasPrefix(msg, "WARN mongots: stand-in mode") && strings.Contains(msg, s.Database().Name()+"."+topic) {
			warned++
		}
	}
	if warned != 2 {
		t.Fatalf("stand-in warnings %d, want one per Ensure: %q", warned, rec.messages())
	}
}

func TestEnsureRejectsSpec(t *testing.T) {
	s, m := ferretStore(t, DefaultOptions())
	ctx := testCtx(t)
	for _, c := range []struct {
		name string
		spec CollectionSpec
		want string
	}{
		{"no name", CollectionSpec{}, "empty collection name"},
		{"granularity", CollectionSpec{Name: topic, Granularity: "days"}, `granularity "days"`},
		{"both bucketings", CollectionSpec{Name: topic, Granularity: "hours", BucketMaxSpan: time.Hour}, "exclusive"},
		{"span fraction", CollectionSpec{Name: topic, BucketMaxSpan: 1500 * time.Millisecond}, "whole seconds"},
		{"span too long", CollectionSpec{Name: topic, BucketMaxSpan: 366 * 24 * time.Hour}, "whole seconds"},
		{"negative TTL", CollectionSpec{Name: topic, ExpireAfter: -time.Hour}, "expire after"},
		{"TTL fraction", CollectionSpec{Name: topic, ExpireAfter: time.Millisecond}, "expire after"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.Ensure(ctx, c.spec)
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Ensure(%+v): %v, want ErrInvalidSpec saying %q", c.spec, err, c.want)
			}
		})
	}
	if n := len(m.All()); n != 0 {
		t.Fatalf("invalid specs sent %d commands", n)
	}
}

func TestQueryArguments(t *testing.T) {
	s, m := ferretStore(t, DefaultOptions())
	ctx := testCtx(t)
	later := t0.Add(time.Hour)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"Range empty range", func() error { _, err := s.Range(ctx, topic, "d", later, t0, 0); return err }()},
		{"Range no device", func() error { _, err := s.Range(ctx, topic, "", t0, later, 0); return err }()},
		{"Range negative limit", func() error { _, err := s.Range(ctx, topic, "d", t0, later, -1); return err }()},
		{"Range no collection", func() error { _, err := s.Range(ctx, "", "d", t0, later, 0); return err }()},
		{"Window unit", func() error { _, err := s.Window(ctx, topic, "d", "f", t0, later, "week", 1); return err }()},
		{"Window bin size", func() error { _, err := s.Window(ctx, topic, "d", "f", t0, later, "hour", 0); return err }()},
		{"Window field", func() error { _, err := s.Window(ctx, topic, "d", "a.b", t0, later, "hour", 1); return err }()},
		{"Window range", func() error { _, err := s.Window(ctx, topic, "d", "f", t0, t0, "hour", 1); return err }()},
		{"Latest no collection", func() error { _, err := s.Latest(ctx, "", nil); return err }()},
		{"Write no collection", func() error { _, err := s.Write(ctx, "", nil); return err }()},
	} {
		if !errors.Is(c.err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", c.name, c.err)
		}
	}
	if got, err := s.Latest(ctx, topic, []string{}); got != nil || err != nil {
		t.Errorf("Latest with an empty filter: %v, %v; want nothing", got, err)
	}
	if n := len(m.All()); n != 0 {
		t.Fatalf("invalid queries sent %d commands", n)
	}
}
