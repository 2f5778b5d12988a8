package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
)

// TestHappyPath: samples of several devices of two classes, spread over
// several partitions, are stored once each with their fields intact;
// MongoDB's checkpoint and the broker's committed offsets both end at the
// partitions' end offsets. Runs against our broker, kfake and Apache
// Kafka, and the FerretDB stand-in (plain collections: FerretDB has no
// time-series collections).
func TestHappyPath(t *testing.T) { forEachTarget(t, testHappyPath) }

func testHappyPath(t *testing.T, addr string) {
	press, meter := testFactory+".press", testFactory+".power-meter"
	createTopics(t, addr, map[string]int32{press: 3, meter: 2, press + ".dlq": 1, meter + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.Batch.MaxRecords = 300
	cfg.HTTPListen = "127.0.0.1:0"
	d := openDB(t, cfg)
	p := newProducer(t, addr)
	const devs, n = 6, 100
	p.produce(t, stream([]string{"press", "power-meter"}, devs, 0, n/2)...)
	r := startSink(t, cfg)
	p.produce(t, stream([]string{"press", "power-meter"}, devs, n/2, n)...)
	waitFor(t, "every sample stored", func() bool { return d.total(press, meter) >= 2*devs*n })
	ends := endOffsets(t, addr, press, meter)
	waitFor(t, "the offsets committed", func() bool {
		c := committedOffsets(t, addr, cfg.Kafka.Group)
		return allCommitted(c, ends)
	})
	base := "http://" + r.s.Addr().String()
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ok",
		"/metrics": "factorywire_sink_consumer_lag_records{partition=\"0\",topic=\"plant-t.press\"} 0",
	} {
		body, code := httpGet(t, base+path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", path, code, body, want)
		}
	}
	if lag := counter(t, r.s.reg, "factorywire_sink_consumer_lag_records"); lag != 0 {
		t.Errorf("consumer lag %v after everything was consumed, want 0", lag)
	}
	r.close(t)

	want := map[string][2]uint64{}
	for _, class := range []string{"press", "power-meter"} {
		for i := range devs {
			want[fmt.Sprintf("%s-%02d", class, i)] = [2]uint64{0, n}
		}
	}
	checkExactlyOnce(t, mergeSeqs(d.seqs(t, press), d.seqs(t, meter)), want)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, topic := range []string{press, meter} {
		saved, err := d.store.LoadOffsets(ctx, cfg.Kafka.Group, topic)
		if err != nil {
			t.Fatal(err)
		}
		if !allCommitted(map[string]map[int32]int64{topic: saved}, map[string]map[int32]int64{topic: ends[topic]}) || len(saved) > len(ends[topic]) {
			t.Errorf("%s: offsets saved in MongoDB %v, want the end offsets %v", topic, saved, ends[topic])
		}
	}
	// Fields and errors come back as produced.
	got, err := d.store.Range(ctx, press, "press-03", t0, t0.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("Range returned %d samples of press-03, want %d", len(got), n)
	}
	for _, s := range got {
		w := testSample("press", "press-03", s.Seq)
		if !s.Time.Equal(w.Time) || !maps.EqualFunc(s.Fields, w.Fields, devices.Value.Equal) || !maps.Equal(s.Errors, w.Errors) {
			t.Fatalf("stored sample %+v, want %+v", s, w)
		}
	}
	if c := counter(t, r.s.reg, "factorywire_sink_samples_stored_total"); c != 2*devs*n {
		t.Errorf("samples_stored_total = %v, want %d", c, 2*devs*n)
	}
	if c := counter(t, r.s.reg, "factorywire_sink_duplicates_skipped_total"); c != 0 {
		t.Errorf("duplicates_skipped_total = %v, want 0", c)
	}
}

func httpGet(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body), resp.StatusCode
}

// TestSchemaVersions: a version 1 record, as a gateway not yet upgraded
// (or its spool) sends, and a version 2 record with tags and units both
// land, each with its own meta: identity only for version 1, identity,
// tags and units for version 2. Our broker and the FerretDB stand-in.
func TestSchemaVersions(t *testing.T) {
	addr := startBroker(t)
	topic := testFactory + ".press"
	createTopics(t, addr, map[string]int32{topic: 1, topic + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	d := openDB(t, cfg)
	p := newProducer(t, addr)

	old := sampleRecord(testSample("press", "press-01", 1))
	old.Value = []byte(strings.Replace(string(old.Value), `{"v":2,`, `{"v":1,`, 1))
	if s, err := devices.DecodeSample(old.Value); err != nil || !strings.HasPrefix(string(old.Value), `{"v":1,`) || s.Tags != nil {
		t.Fatalf("version 1 record %s: %v", old.Value, err)
	}
	tagged := testSample("press", "press-02", 1)
	tagged.Tags = map[string]string{"line": "line-3", "asset_id": "P-1107"}
	tagged.Units = map[string]string{"pressure": "bar", "temperature": "degC"}
	p.produce(t, old, sampleRecord(tagged))
	r := startSink(t, cfg)
	waitFor(t, "both samples stored", func() bool { return d.total(topic) >= 2 })
	r.close(t)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for dev, want := range map[string]bson.D{
		"press-01": {{Key: "factory", Value: testFactory}, {Key: "class", Value: "press"}, {Key: "device", Value: "press-01"}},
		"press-02": {{Key: "factory", Value: testFactory}, {Key: "class", Value: "press"}, {Key: "device", Value: "press-02"},
			{Key: "tags", Value: bson.D{{Key: "asset_id", Value: "P-1107"}, {Key: "line", Value: "line-3"}}},
			{Key: "units", Value: bson.D{{Key: "pressure", Value: "bar"}, {Key: "temperature", Value: "degC"}}}},
	} {
		raw, err := d.client.Database(d.name).Collection(topic).FindOne(ctx, bson.D{{Key: "meta.device", Value: dev}}).Raw()
		if err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		wantRaw, err := bson.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := raw.Lookup("meta").Document(); !bytes.Equal(got, wantRaw) {
			t.Errorf("%s: meta %s, want %s", dev, got, bson.Raw(wantRaw))
		}
	}
	// Queried by tag, as docs/OPERATIONS.md shows.
	if n, err := d.client.Database(d.name).Collection(topic).CountDocuments(ctx, bson.D{{Key: "meta.tags.line", Value: "line-3"}}); err != nil || n != 1 {
		t.Errorf("documents with meta.tags.line line-3: %d (%v), want 1", n, err)
	}
	if n := counter(t, r.s.reg, "factorywire_sink_dead_letters_total"); n != 0 {
		t.Errorf("%v records dead-lettered, want none", n)
	}
}
