package sink

import (
	"bytes"
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/topics"
)

// readTopic reads topic from the start until it holds n records.
func readTopic(t testing.TB, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s holds %d records after %v, want %d", topic, len(recs), waitLimit, n)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestPoisonRecords: each kind of poison record goes to <topic>.dlq with
// the original record and the dlq.* headers; the good records around
// them are stored and the sink goes on. Against the FerretDB stand-in; the
// write-rejected case is a seq beyond the int64 range, which the store
// refuses before sending (a document the server refuses takes the same
// path, mongots.DocError with Transient false).
func TestPoisonRecords(t *testing.T) {
	addr := startBroker(t)
	topic := testFactory + ".press"
	createTopics(t, addr, map[string]int32{topic: 1, topic + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.MaxPastSkew = 30 * 24 * time.Hour
	d := openDB(t, cfg)
	p := newProducer(t, addr)
	r := startSink(t, cfg)

	good := func(seq uint64) *kgo.Record { return sampleRecord(testSample("press", "press-00", seq)) }
	withValue := func(v string) *kgo.Record { rec := good(0); rec.Value = []byte(v); return rec }
	at := func(ts time.Time) *kgo.Record {
		s := testSample("press", "press-09", 1)
		s.Time = ts
		return sampleRecord(s)
	}
	wrongClass := testSample("power-meter", "press-00", 3)
	wrongClassRec := sampleRecord(wrongClass)
	wrongClassRec.Topic = topic
	wrongKey := good(4)
	wrongKey.Key = []byte("press-01")
	huge := sampleRecord(testSample("press", "press-huge", math.MaxInt64+1))
	missingSeq := strings.Replace(string(good(2).Value), `"seq":2,`, "", 1)

	poison := []struct {
		rec   *kgo.Record
		class string
		msg   string
	}{
		{withValue("not json"), ClassDecode, "malformed sample"},
		{withValue(strings.Replace(string(good(1).Value), `{"v":2`, `{"v":3`, 1)), ClassSchemaVersion, "schema version 3"},
		{withValue(missingSeq), ClassDecode, `key "seq": missing`},
		{at(time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)), ClassTimestamp, "before 1970-01-01"},
		{at(time.Date(2039, 1, 1, 0, 0, 0, 0, time.UTC)), ClassTimestamp, "after 2038-01-19"},
		{at(time.Now().Add(2 * time.Hour)), ClassTimestamp, "more than max_future_skew 1h0m0s"},
		{at(time.Now().Add(-31 * 24 * time.Hour)), ClassTooOld, "more than max_past_skew 720h0m0s behind the sink's clock"},
		{wrongClassRec, ClassTopicMismatch, `class "power-meter"`},
		{wrongKey, ClassKeyMismatch, `record key "press-01"`},
		{huge, ClassWriteRejected, "int64 range"},
	}
	var recs []*kgo.Record
	seq := uint64(0)
	for _, pr := range poison {
		recs = append(recs, good(seq), pr.rec)
		seq++
	}
	recs = append(recs, good(seq))
	seq++
	p.produce(t, recs...)

	dlq := readTopic(t, addr, topic+".dlq", len(poison))
	if len(dlq) != len(poison) {
		t.Fatalf("%d dead letters, want %d", len(dlq), len(poison))
	}
	for i, pr := range poison {
		got := dlq[i]
		wantOffset := int64(2*i + 1)
		if h := header(got, HeaderTopic); h != topic {
			t.Errorf("dead letter %d: %s = %q, want %q", i, HeaderTopic, h, topic)
		}
		if h := header(got, HeaderPartition); h != "0" {
			t.Errorf("dead letter %d: %s = %q, want 0", i, HeaderPartition, h)
		}
		if h := header(got, HeaderOffset); h != strconv.FormatInt(wantOffset, 10) {
			t.Errorf("dead letter %d: %s = %q, want %d", i, HeaderOffset, h, wantOffset)
		}
		if h := header(got, HeaderErrorClass); h != pr.class {
			t.Errorf("dead letter %d: %s = %q, want %q (%s)", i, HeaderErrorClass, h, pr.class, header(got, HeaderError))
		}
		if h := header(got, HeaderError); !strings.Contains(h, pr.msg) {
			t.Errorf("dead letter %d (%s): %s = %q, want it to mention %q", i, pr.class, HeaderError, h, pr.msg)
		}
		if !bytes.Equal(got.Value, pr.rec.Value) || !bytes.Equal(got.Key, pr.rec.Key) || header(got, "content-type") != "application/json" {
			t.Errorf("dead letter %d: key %q value %q, want the original record's", i, got.Key, got.Value)
		}
	}
	// The sink goes on: later samples are stored too.
	p.produce(t, good(seq), good(seq+1))
	seq += 2
	waitFor(t, "the good samples stored", func() bool { return d.count(topic) >= int64(seq) })
	r.close(t)
	checkExactlyOnce(t, d.seqs(t, topic), map[string][2]uint64{"press-00": {0, seq}})
	for _, pr := range poison {
		want := 1.0
		if pr.class == ClassDecode || pr.class == ClassTimestamp {
			want = map[string]float64{ClassDecode: 2, ClassTimestamp: 3}[pr.class]
		}
		if c := counter(t, r.s.reg, "factorywire_sink_dead_letters_total", "class="+pr.class); c != want {
			t.Errorf("dead_letters_total{class=%s} = %v, want %v", pr.class, c, want)
		}
	}
}

// TestDeadLetterTopicMissing: while <topic>.dlq does not exist, the sink
// retries the dead letter and commits nothing past it; once the topic is
// created, the dead letter is produced and the batch committed.
func TestDeadLetterTopicMissing(t *testing.T) {
	addr := startBroker(t)
	topic := testFactory + ".oven"
	createTopics(t, addr, map[string]int32{topic: 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.Retry.AttemptTimeout = 2 * time.Second
	d := openDB(t, cfg)
	p := newProducer(t, addr)
	good := func(seq uint64) *kgo.Record { return sampleRecord(testSample("oven", "oven-00", seq)) }
	p.produce(t, good(0), good(1))
	r := startSink(t, cfg)
	waitFor(t, "the first samples stored", func() bool { return d.count(topic) == 2 })
	waitFor(t, "the first offsets committed", func() bool { return committedOffsets(t, addr, cfg.Kafka.Group)[topic][0] == 2 })

	bad := good(2)
	bad.Value = []byte("{")
	p.produce(t, bad, good(2))
	waitFor(t, "dead-letter retries", func() bool {
		return counter(t, r.s.reg, "factorywire_sink_transient_retries_total", "op="+opDLQ) >= 1
	})
	if c := committedOffsets(t, addr, cfg.Kafka.Group)[topic][0]; c != 2 {
		t.Fatalf("committed offset %d while the dead letter at offset 2 is not produced, want 2", c)
	}
	if n := d.count(topic); n != 2 {
		t.Fatalf("%d samples stored while the batch's dead letter waits, want 2 (dead letters go first)", n)
	}
	createTopics(t, addr, map[string]int32{topic + ".dlq": 1})
	waitFor(t, "the batch committed", func() bool { return committedOffsets(t, addr, cfg.Kafka.Group)[topic][0] == 4 })
	dlq := readTopic(t, addr, topic+".dlq", 1)
	if header(dlq[0], HeaderOffset) != "2" || header(dlq[0], HeaderErrorClass) != ClassDecode {
		t.Fatalf("dead letter headers %v, want offset 2, class decode", dlq[0].Headers)
	}
	r.close(t)
	checkExactlyOnce(t, d.seqs(t, topic), map[string][2]uint64{"oven-00": {0, 3}})
}

// FuzzClassify: whatever a record holds, classify either returns a dead
// letter with a known class and a message, or a sample that belongs in
// the record's topic, keyed by its device, with a ts in the bounds.
func FuzzClassify(f *testing.F) {
	s := testSample("press", "press-01", 7)
	f.Add(s.AppendJSON(nil), []byte("press-01"), int64(0), false)
	f.Add(s.AppendJSON(nil), []byte("press-02"), int64(0), true)
	f.Add([]byte(`{"v":3}`), []byte("x"), int64(0), false)
	f.Add([]byte(`{"v":1,"factory":"plant-t","device":"d","class":"press","ts":"1969-01-01T00:00:00Z","seq":1,"fields":{}}`), []byte("d"), int64(0), false)
	f.Add([]byte(`{"v":1,"factory":"plant-t","device":"d","class":"press","ts":"2100-01-01T00:00:00Z","seq":1,"fields":{}}`), []byte("d"), time.Now().UnixMilli(), true)
	name, err := topics.Parse(testFactory + ".press")
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	var dec devices.Decoder // as the pipeline has one, kept from record to record
	f.Fuzz(func(t *testing.T, value, key []byte, tsMillis int64, logAppend bool) {
		r := &kgo.Record{Topic: testFactory + ".press", Key: key, Value: value, Timestamp: time.UnixMilli(tsMillis)}
		ref := now
		if logAppend { // as referenceTime with a LogAppendTime record
			ref = r.Timestamp
		}
		oldest := now.Add(-90 * 24 * time.Hour)
		s, dl := classify(&dec, r, name, nil, timeLimits{ref: ref, refName: "the reference", skew: time.Hour, oldest: oldest, why: "the TTL"})
		if dl != nil {
			switch dl.class {
			case ClassDecode, ClassSchemaVersion, ClassTimestamp, ClassTopicMismatch, ClassKeyMismatch, ClassTooOld:
			default:
				t.Fatalf("class %q", dl.class)
			}
			if dl.err == nil || dl.err.Error() == "" || dl.record().Topic != testFactory+".press.dlq" {
				t.Fatalf("dead letter %+v", dl)
			}
			return
		}
		if s.Factory != testFactory || s.Class != "press" || s.Device != string(key) ||
			s.Time.Before(minSampleTime) || s.Time.After(maxSampleTime) || s.Time.After(ref.Add(time.Hour)) || s.Time.Before(oldest) {
			t.Fatalf("accepted %+v from key %q", s, key)
		}
	})
}
