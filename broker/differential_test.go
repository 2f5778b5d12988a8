package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/factorywire/factorywire/internal/kafkatest"
)

// TestDifferentialAgainstKafka runs one kadm/kgo workload against Apache
// Kafka 4.1.1 (a single-node KRaft cluster, internal/kafkatest) and against
// our broker, with the same API versions, and compares what a client
// observes: records, offsets and error codes, observation by observation.
//
// Settings that change an observation are aligned, everything else is each
// broker's default:
//
//   - auto.create.topics.enable=true (Kafka's default) and
//     Config.AutoCreateTopics=true (ours is off by default), so that producing
//     to a missing topic shows the broker's rule: created only when the
//     client's Metadata request allows it.
//   - num.partitions=2 and Config.DefaultPartitions=2, the partition count of
//     an auto-created topic (both default to 1; 2 shows the setting is used).
//   - log.retention.check.interval.ms=200 with log.initial.task.delay.ms=0,
//     and Config.RetentionCheckInterval=200ms, so that retention runs within
//     the test on both (Kafka's first pass otherwise waits 30 s, and both
//     default to every 5 minutes). The test waits for it; it asserts no
//     timing.
//   - group.initial.rebalance.delay.ms=0 (set by kafkatest) and
//     Config.GroupInitialRebalanceDelay=0.
//
// The topic defaults (retention.ms 7 days, retention.bytes -1, segment.bytes
// 1 GiB, segment.ms 7 days, max.message.bytes 1048588, cleanup.policy
// delete) are the same on both by default, and are compared.
//
// Only what must differ is normalised, each where it is observed: node ids
// (Kafka's node is 1, ours 0: a leader or replica is noted as being the
// cluster's one broker), topic ids (random: noted as set, or as new after
// a re-create), error messages (each broker's own text: the code is the
// contract), the order in which Kafka lists partitions and configs (none
// in particular: sorted), and errors a client makes up without asking the
// broker ("client error"). Record timestamps are the producer's on both
// (CreateTime), and cluster ids are not observed. DescribeConfigs and
// CreateTopics are compared on the topic configs our broker implements;
// Kafka lists 27 more (see docs/COMPATIBILITY.md).
//
// Where our broker differs from Kafka on purpose, the observation is listed
// in knownDifferences with both answers: the test checks that each side
// still gives its answer, so a change on either side fails until
// docs/COMPATIBILITY.md ("Differences from Apache Kafka") is updated.
//
// This replaces a comparison with kfake, franz-go's in-memory broker: kfake
// is laxer than Kafka (any topic name, no config validation), and Kafka
// covers everything it did.
func TestDifferentialAgainstKafka(t *testing.T) {
	kafka := kafkatest.Start(t, kafkatest.Options{Props: map[string]string{
		"auto.create.topics.enable":       "true",
		"num.partitions":                  "2",
		"log.retention.check.interval.ms": "200",
		"log.initial.task.delay.ms":       "0",
	}})
	ours := startBroker(t, "", func(c *Config) {
		c.AutoCreateTopics = true
		c.DefaultPartitions = 2
		c.RetentionCheckInterval = 200 * time.Millisecond
		c.GroupInitialRebalanceDelay = 0
	})

	// Both clients use the versions our broker advertises, so the two
	// brokers answer the same requests.
	versions := advertisedVersions()

	// One base time for both runs, so the records' timestamps are the
	// same; an hour ago, well inside the default retention of 7 days.
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	start := time.Now()
	want := differentialWorkload(t, kafka.Brokers()[0], versions, base)
	t.Logf("Apache Kafka: %d observations in %v", len(want), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	got := differentialWorkload(t, ours.Addr().String(), versions, base)
	t.Logf("ours: %d observations in %v", len(got), time.Since(start).Round(time.Millisecond))

	// Observations are compared by what was done; each workload notes
	// them in the same order, and each "what" once.
	kafkaSaw, oursSaw := observed(t, "Kafka", want), observed(t, "ours", got)
	for _, o := range want {
		g, ok := oursSaw[o.what]
		if !ok {
			t.Errorf("%s: observed on Kafka only (%s)", o.what, o.value)
			continue
		}
		if d, ok := knownDifferences[o.what]; ok {
			if o.value != d.kafka || g != d.ours {
				t.Errorf("%s: a known difference changed (update docs/COMPATIBILITY.md):\n Kafka: %s (documented: %s)\n ours:  %s (documented: %s)", o.what, o.value, d.kafka, g, d.ours)
			}
			continue
		}
		if o.value != g {
			t.Errorf("%s:\n Kafka: %s\n ours:  %s", o.what, o.value, g)
		}
	}
	for _, o := range got {
		if _, ok := kafkaSaw[o.what]; !ok {
			t.Errorf("%s: observed on ours only (%s)", o.what, o.value)
		}
	}
	for what := range knownDifferences {
		if _, ok := kafkaSaw[what]; !ok {
			t.Errorf("known difference %q was not observed", what)
		}
	}
	if t.Failed() || testing.Verbose() {
		for _, o := range got {
			t.Logf("%s: %s", o.what, o.value)
		}
	}
}

// observed indexes a workload's observations by what was done, failing the
// test if one was noted twice.
func observed(t *testing.T, name string, obs []observation) map[string]string {
	m := make(map[string]string, len(obs))
	for _, o := range obs {
		if _, dup := m[o.what]; dup {
			t.Errorf("%s: %q noted twice", name, o.what)
		}
		m[o.what] = o.value
	}
	return m
}

// knownDifferences are the observations where our broker answers otherwise
// than Apache Kafka on purpose, with each one's answer. Each is described,
// with its reason, in docs/COMPATIBILITY.md under "Differences from Apache
// Kafka".
var knownDifferences = map[string]struct{ kafka, ours string }{
	// Batches are stored as sent, so what Kafka accepts and repairs
	// (a maxTimestamp below a record's, offset deltas out of order: it
	// rewrites them) or reads leniently (any negative length as null) is
	// refused; a compressed section that does not decompress is
	// INVALID_RECORD, where Kafka fails with an internal error.
	"raw produce of malformed records: key length -2":               {"ok", "INVALID_RECORD"},
	"raw produce of malformed records: offset deltas out of order":  {"ok", "INVALID_RECORD"},
	"raw produce of malformed records: maxTimestamp below a record": {"ok", "INVALID_RECORD"},
	"raw produce of malformed records: zstd garbage":                {"UNKNOWN_SERVER_ERROR", "INVALID_RECORD"},
	// No log compaction: a compacted topic is refused rather than
	// created and silently never compacted.
	"create with cleanup.policy=compact":        {"ok", "INVALID_CONFIG"},
	"create with cleanup.policy=delete,compact": {"ok", "INVALID_CONFIG"},
	// Kafka 4 refuses segments under 1 MiB (KIP-1030); ours keeps
	// Kafka 3's bound of 14 bytes, so that retention acts on little data
	// (tests, small devices).
	"create with segment.bytes=4096": {"INVALID_CONFIG", "ok"},
	// Topic configs our broker does not implement are refused, never
	// silently ignored.
	"create with min.insync.replicas=1": {"ok", "INVALID_CONFIG"},
	// Kafka 4 refuses a record stamped more than
	// message.timestamp.after.max.ms (default 1 h) ahead of its clock;
	// ours has no such limit (factorywire's sink dead-letters samples
	// too far ahead instead, and its tests produce them).
	"produce a record stamped 2h0m0s from now": {"INVALID_TIMESTAMP offset -1", "ok offset 4"},
	// Committed offsets live in the broker's own log, not in a topic:
	// there is no __consumer_offsets to list (nor to consume).
	"list all topics: internal ones": {"[__consumer_offsets(ok)]", "[]"},
	// ListOffsets by timestamp answers at batch granularity: the base
	// offset and the newest timestamp of the first batch holding a
	// record at or after the time, where Kafka answers that record's
	// offset and timestamp. Both agree on which batch, so a consumer
	// starting there reads the same records, plus the batch's older ones.
	"offset by time: between batches":                               {"ok offset 1 timestamp 10000", "ok offset 1 timestamp 14000"},
	"offset by time: at a batch's first record":                     {"ok offset 1 timestamp 10000", "ok offset 1 timestamp 14000"},
	"offset by time: inside an uncompressed batch":                  {"ok offset 3 timestamp 12000", "ok offset 1 timestamp 14000"},
	"offset by time: inside an uncompressed batch, between records": {"ok offset 4 timestamp 13000", "ok offset 1 timestamp 14000"},
	"offset by time: at a batch's last record":                      {"ok offset 5 timestamp 14000", "ok offset 1 timestamp 14000"},
	"offset by time: inside a compressed batch, out of order":       {"ok offset 8 timestamp 33000", "ok offset 7 timestamp 34000"},
	"offset by time: inside a compressed batch, the newest":         {"ok offset 10 timestamp 34000", "ok offset 7 timestamp 34000"},
}

// observation is one thing a client saw: what was done, and what came of
// it.
type observation struct{ what, value string }

// differentialWorkload runs the workload against addr and returns every
// observation.
func differentialWorkload(t *testing.T, addr string, versions *kversion.Versions, base time.Time) []observation {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := &workload{t: t, ctx: ctx}
	// A short MetadataMinAge lets kgo see a grown topic at once, rather
	// than 5 s after its last metadata request.
	w.cl = newClient(t, addr, kgo.MaxVersions(versions), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50*time.Millisecond))
	w.adm = kadm.NewClient(w.cl)
	for _, step := range []struct {
		name string
		run  func()
	}{
		{"topics", w.topics},
		{"auto-creation", func() { w.autoCreate(addr, versions) }},
		{"records", func() { w.records(addr, versions, base) }},
		{"offsets by time", func() { w.offsetsByTime(addr, versions, base) }},
		{"out of range", func() { w.outOfRange(base) }},
		{"re-create", w.recreate},
		{"partitions", w.partitions},
		{"configs", w.configs},
		{"groups", w.groups},
		{"list", w.listAll},
	} {
		start := time.Now()
		step.run()
		t.Logf("%s: %s took %v", addr, step.name, time.Since(start).Round(time.Millisecond))
	}
	return w.obs
}

// workload is one run of the differential workload against one broker.
type workload struct {
	t   *testing.T
	ctx context.Context
	cl  *kgo.Client
	adm *kadm.Client
	obs []observation
}

func (w *workload) note(what, format string, args ...any) {
	w.obs = append(w.obs, observation{what, fmt.Sprintf(format, args...)})
}

// code is the Kafka error name of err, "ok" for nil, or "client error" for
// an error the client made up itself (its text names addresses and
// timings). Error messages are not compared: their text is each broker's
// own, the code is the contract.
func code(err error) string {
	if err == nil {
		return "ok"
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return "client error"
}

func codeOf(c int16) string { return code(kerr.ErrorForCode(c)) }

// topics: CreateTopics with valid and invalid requests.
func (w *workload) topics() {
	ctx, adm := w.ctx, w.adm
	r, err := adm.CreateTopic(ctx, 3, 1, nil, "diff")
	w.note("create diff", "%v %s partitions=%d rf=%d id set=%v", err, code(r.Err), r.NumPartitions, r.ReplicationFactor, r.ID != kadm.TopicID{})
	// CreateTopics v5+ answers the new topic's configs. Kafka lists every
	// topic config it has; our broker only those it implements, which are
	// the ones compared (docs/COMPATIBILITY.md says so).
	for _, tc := range topicConfigs {
		c, ok := r.Configs[tc.name]
		w.note("create diff: config "+tc.name, "present=%v value=%s source=%v sensitive=%v", ok, c.MaybeValue(), c.Source, c.Sensitive)
	}
	w.waitTopic("diff", 3)

	r, _ = adm.CreateTopic(ctx, 3, 1, nil, "diff")
	w.note("create diff again", "%s", code(r.Err))
	r, _ = adm.CreateTopic(ctx, 1, 1, nil, "bad name!")
	w.note("create a topic named \"bad name!\"", "%s", code(r.Err))
	r, _ = adm.CreateTopic(ctx, 1, 1, nil, "diff.mixed_name")
	w.note("create a topic named diff.mixed_name", "%s", code(r.Err))
	// '.' and '_' collide in Kafka's metric names.
	r, _ = adm.CreateTopic(ctx, 1, 1, nil, "diff_mixed.name")
	w.note("create a topic named diff_mixed.name", "%s", code(r.Err))
	r, _ = adm.CreateTopic(ctx, 1, 1, nil, strings.Repeat("x", 250))
	w.note("create a topic with a 250-character name", "%s", code(r.Err))
	r, _ = adm.CreateTopic(ctx, 0, 1, nil, "diff-zero")
	w.note("create with 0 partitions", "%s", code(r.Err))
	r, _ = adm.CreateTopic(ctx, 1, 5, nil, "diff-rf5")
	w.note("create with replication factor 5 on one broker", "%s", code(r.Err))
	for _, c := range []struct{ name, key, value string }{
		{"diff-bad-key", "no.such.config", "1"},
		{"diff-bad-value", "retention.ms", "abc"},
		{"diff-bad-min", "retention.ms", "-2"},
		{"diff-bad-segment", "segment.bytes", "10"},
		{"diff-small-segment", "segment.bytes", "4096"},
		{"diff-mib-segment", "segment.bytes", "1048576"},
		{"diff-neg-bytes", "retention.bytes", "-5"},
		{"diff-zero-roll", "segment.ms", "0"},
		{"diff-neg-max", "max.message.bytes", "-1"},
		{"diff-forever", "retention.ms", "-1"},
		{"diff-cleanup-delete", "cleanup.policy", "delete"},
		{"diff-cleanup-bad", "cleanup.policy", "nope"},
		{"diff-cleanup-both", "cleanup.policy", "delete,compact"},
		{"diff-big-segment", "segment.bytes", "3000000000"},
		{"diff-max-retention", "retention.ms", "9223372036854775807"},
		{"diff-max-roll", "segment.ms", "9223372036854775807"},
		{"diff-zero-retention", "retention.ms", "0"},
		{"diff-zero-bytes", "retention.bytes", "0"},
		{"diff-compact", "cleanup.policy", "compact"},
		{"diff-min-isr", "min.insync.replicas", "1"},
	} {
		r, _ = adm.CreateTopic(ctx, 1, 1, map[string]*string{c.key: &c.value}, c.name)
		w.note(fmt.Sprintf("create with %s=%s", c.key, c.value), "%s", code(r.Err))
		if r.Err == nil {
			// Remove what was created (on one broker only where it
			// is a known difference), so that both hold the same
			// topics from here on.
			w.waitTopic(c.name, 1)
			w.adm.DeleteTopics(ctx, c.name)
			w.waitNoTopic(c.name)
		}
	}
	vr, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "diff-dry")
	w.note("validate-only create", "%v %s", err, code(vr["diff-dry"].Err))
	w.note("after a validate-only create", "%s", w.metadataCode("diff-dry"))

	td, err := adm.ListTopics(ctx, "diff")
	w.note("list diff", "%v %s partitions=%d", err, code(td["diff"].Err), len(td["diff"].Partitions))
	w.describePartitions("diff")
	dr, _ := adm.DeleteTopics(ctx, "nope")
	w.note("delete a missing topic", "%s", code(dr["nope"].Err))
}

// autoCreate: produce to a missing topic, by a client that does not allow
// auto-creation and by one that does.
func (w *workload) autoCreate(addr string, versions *kversion.Versions) {
	ctx := w.ctx
	// kgo asks Metadata for the topic a few times (UnknownTopicRetries)
	// before failing the record.
	strict := newClient(w.t, addr, kgo.MaxVersions(versions), kgo.UnknownTopicRetries(2))
	_, err := strict.ProduceSync(ctx, &kgo.Record{Topic: "diff-noauto", Value: []byte("x")}).First()
	w.note("produce to a missing topic, auto-creation not allowed by the client", "%s", code(err))
	w.note("the topic afterwards", "%s", w.metadataCode("diff-noauto"))

	lax := newClient(w.t, addr, kgo.MaxVersions(versions), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rec, err := lax.ProduceSync(ctx, &kgo.Record{Topic: "diff-auto", Partition: 1, Value: []byte("x")}).First()
	if err != nil {
		w.note("produce to a missing topic, auto-creation allowed by the client", "%s", code(err))
	} else {
		w.note("produce to a missing topic, auto-creation allowed by the client", "partition %d offset %d", rec.Partition, rec.Offset)
	}
	w.waitTopic("diff-auto", 2)
	w.describePartitions("diff-auto")
	w.describeConfigs("auto-created", "diff-auto", nil)
}

// records: produce records with keys, headers and timestamps, synchronously
// to chosen partitions so offsets are deterministic, and read them back.
func (w *workload) records(addr string, versions *kversion.Versions, base time.Time) {
	ctx := w.ctx
	var recs []*kgo.Record
	for i := 0; i < 60; i++ {
		recs = append(recs, &kgo.Record{
			Topic:     "diff",
			Partition: int32(i % 3),
			Key:       []byte(fmt.Sprintf("k%d", i%5)),
			Value:     []byte(strings.Repeat("v", i)),
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}},
			Timestamp: base.Add(time.Duration(i) * time.Second),
		})
	}
	// Edge cases of the record format: a null key and an empty one, a
	// null value (a tombstone, which a delete-policy topic stores as
	// any other record), no headers, several headers with a repeated
	// key and a null value, a timestamp before 1970.
	recs = append(recs,
		&kgo.Record{Topic: "diff", Partition: 0, Value: []byte("null key"), Timestamp: base},
		&kgo.Record{Topic: "diff", Partition: 0, Key: []byte{}, Value: []byte("empty key"), Timestamp: base},
		&kgo.Record{Topic: "diff", Partition: 1, Key: []byte("tombstone"), Timestamp: base},
		&kgo.Record{Topic: "diff", Partition: 2, Key: []byte("headers"), Value: []byte("h"), Timestamp: base, Headers: []kgo.RecordHeader{
			{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}, {Key: "empty", Value: []byte{}}, {Key: "null"},
		}},
		&kgo.Record{Topic: "diff", Partition: 2, Key: []byte("old"), Value: []byte("o"), Timestamp: time.UnixMilli(-1000)},
	)
	for i, rec := range recs {
		rr, err := w.cl.ProduceSync(ctx, rec).First()
		if err != nil {
			w.note(fmt.Sprintf("produce %d", i), "%s", code(err))
			continue
		}
		w.note(fmt.Sprintf("produce %d", i), "partition %d offset %d", rr.Partition, rr.Offset)
	}
	w.rawProduces(addr, base)

	starts, err := w.adm.ListStartOffsets(ctx, "diff")
	w.note("list start offsets", "%v", err)
	ends, err := w.adm.ListEndOffsets(ctx, "diff")
	w.note("list end offsets", "%v", err)
	for p := int32(0); p < 3; p++ {
		s, _ := starts.Lookup("diff", p)
		e, _ := ends.Lookup("diff", p)
		w.note(fmt.Sprintf("partition %d", p), "start %d %s end %d %s", s.Offset, code(s.Err), e.Offset, code(e.Err))
	}
	missing, _ := w.adm.ListEndOffsets(ctx, "nope")
	missing.Each(func(o kadm.ListedOffset) { w.note("end offset of a missing topic", "%s", code(o.Err)) })

	cons := newClient(w.t, addr, kgo.MaxVersions(versions), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"diff": {0: kgo.NewOffset().At(0), 1: kgo.NewOffset().At(0), 2: kgo.NewOffset().At(0)},
	}))
	var got []string
	for len(got) < len(recs) && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachError(func(_ string, p int32, err error) {
			w.note(fmt.Sprintf("fetch error partition %d", p), "%s", code(err))
		})
		fs.EachRecord(func(r *kgo.Record) { got = append(got, describeRecord(r)) })
	}
	sort.Strings(got)
	for i, r := range got {
		w.note(fmt.Sprintf("consumed %d", i), "%s", r)
	}
}

// rawProduces sends Produce requests (v9, on a connection of its own: kgo
// rewrites a request's acks) that a client library would not send, so that
// the broker's answer is what is observed: to a partition or a topic that
// does not exist (Produce never auto-creates), with invalid acks, a corrupt
// batch, and a batch over the topic's max.message.bytes.
func (w *workload) rawProduces(addr string, base time.Time) {
	small := "1000"
	r, _ := w.adm.CreateTopic(w.ctx, 1, 1, map[string]*string{"max.message.bytes": &small}, "diff-small")
	w.note("create diff-small", "%s", code(r.Err))
	w.waitTopic("diff-small", 1)
	raw := dialRaw(w.t, addr)
	ok := makeBatch(testBatch{records: 2, timestamp: base.UnixMilli(), value: []byte("raw")})
	corrupt := append([]byte(nil), ok...)
	corrupt[len(corrupt)-1] ^= 0xff
	for _, c := range []struct {
		what      string
		acks      int16
		topic     string
		partition int32
		batch     []byte
	}{
		{"to a partition the topic does not have", -1, "diff", 7, ok},
		{"to a missing topic", -1, "diff-never", 0, ok},
		{"with acks=2", 2, "diff-small", 0, ok},
		{"of a batch with a bad CRC", -1, "diff-small", 0, corrupt},
		{"of a batch over max.message.bytes", -1, "diff-small", 0, makeBatch(testBatch{records: 1, timestamp: base.UnixMilli(), value: make([]byte, 1000)})},
		{"of a batch within max.message.bytes", 1, "diff-small", 0, ok},
	} {
		p := producePartition(raw.roundTrip(produceReq(9, c.acks, c.topic, c.partition, c.batch)))
		w.note("raw produce "+c.what, "%s offset %d log start %d", codeOf(p.ErrorCode), p.BaseOffset, p.LogStartOffset)
	}
	w.note("the missing topic afterwards", "%s", w.metadataCode("diff-never"))

	// Batches whose CRC is right but whose records are malformed, to a
	// topic of their own so that what Kafka accepts of them moves no
	// offset observed elsewhere.
	r, _ = w.adm.CreateTopic(w.ctx, 1, 1, nil, "diff-malformed")
	w.note("create diff-malformed", "%s", code(r.Err))
	w.waitTopic("diff-malformed", 1)
	compared := map[string]bool{
		"lying count 2^31": true, "fewer records than the count": true, "record length past the end": true,
		"key length -2": true, "negative header key length": true, "offset deltas out of order": true,
		"bytes after the last header": true, "trailing bytes after the last record": true,
		"maxTimestamp below a record": true, "zstd garbage": true, "lying count in a compressed batch": true,
	}
	for _, c := range malformedBatches(w.t, false) {
		if !compared[c.name] {
			continue
		}
		p := producePartition(raw.roundTrip(produceReq(9, -1, "diff-malformed", 0, c.batch)))
		w.note("raw produce of malformed records: "+c.name, "%s", codeOf(p.ErrorCode))
	}

	// Producer clocks: how far from the broker's may a record's
	// timestamp be?
	for _, d := range []time.Duration{-30 * 24 * time.Hour, 30 * time.Minute, 2 * time.Hour} {
		rr, err := w.cl.ProduceSync(w.ctx, &kgo.Record{Topic: "diff-small", Value: []byte("clock"), Timestamp: time.Now().Add(d)}).First()
		w.note(fmt.Sprintf("produce a record stamped %v from now", d), "%s offset %d", code(err), rr.Offset)
	}
}

// describeRecord is what a consumer sees of r, telling a null key, value
// or header value from an empty one.
func describeRecord(r *kgo.Record) string {
	b := func(v []byte) string {
		if v == nil {
			return "null"
		}
		return fmt.Sprintf("%q", v)
	}
	val := b(r.Value)
	if len(r.Value) > 10 {
		val = fmt.Sprintf("%d bytes", len(r.Value))
	}
	var hs []string
	for _, h := range r.Headers {
		hs = append(hs, h.Key+"="+b(h.Value))
	}
	return fmt.Sprintf("p%d@%03d key=%s value=%s headers=[%s] ts=%d type=%d",
		r.Partition, r.Offset, b(r.Key), val, strings.Join(hs, " "), r.Timestamp.UnixMilli(), r.Attrs.TimestampType())
}

// offsetsByTime: ListOffsets earliest, latest and by timestamp over a
// partition of three batches: one record, five records (uncompressed), one
// record, then five records again, gzip-compressed.
func (w *workload) offsetsByTime(addr string, versions *kversion.Versions, base time.Time) {
	ctx := w.ctx
	r, _ := w.adm.CreateTopic(ctx, 1, 1, nil, "diff-times")
	w.note("create diff-times", "%s", code(r.Err))
	w.waitTopic("diff-times", 1)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	batch := func(codec kgo.CompressionCodec, secs ...int) {
		// ManualFlushing holds every record until Flush, which sends
		// them as one batch.
		p := newClient(w.t, addr, kgo.MaxVersions(versions), kgo.ManualFlushing(),
			kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("diff-times"))
		for _, s := range secs {
			p.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(s)), Timestamp: at(s)}, func(r *kgo.Record, err error) {
				w.note(fmt.Sprintf("produce at +%ds", s), "%s offset %d", code(err), r.Offset)
			})
		}
		if err := p.Flush(ctx); err != nil {
			w.t.Fatalf("flush: %v", err)
		}
		p.Close()
	}
	batch(kgo.NoCompression(), 0)
	batch(kgo.NoCompression(), 10, 11, 12, 13, 14)
	batch(kgo.NoCompression(), 20)
	// Timestamps out of order inside a batch: the lookup answers the
	// first record at or after the time, not the earliest in time.
	batch(kgo.GzipCompression(), 30, 33, 31, 34, 32)
	w.note("batches in diff-times", "%s", w.batchShape("diff-times", 0))

	for _, q := range []struct {
		what string
		ts   int64
	}{
		{"earliest", -2},
		{"latest", -1},
		{"before the first record", at(-3600).UnixMilli()},
		{"at the first record", at(0).UnixMilli()},
		{"between batches", at(5).UnixMilli()},
		{"at a batch's first record", at(10).UnixMilli()},
		{"inside an uncompressed batch", at(12).UnixMilli()},
		{"inside an uncompressed batch, between records", at(12).UnixMilli() + 500},
		{"at a batch's last record", at(14).UnixMilli()},
		{"inside a compressed batch, out of order", at(32).UnixMilli()},
		{"inside a compressed batch, the newest", at(34).UnixMilli()},
		{"after the last record", at(3600).UnixMilli()},
	} {
		off, ts, c := w.listOffset("diff-times", 0, q.ts)
		if q.ts >= 0 && ts >= 0 {
			ts -= base.UnixMilli()
		}
		w.note("offset by time: "+q.what, "%s offset %d timestamp %d", c, off, ts)
	}
	after, err := w.adm.ListOffsetsAfterMilli(ctx, at(3600).UnixMilli(), "diff-times")
	o, _ := after.Lookup("diff-times", 0)
	w.note("kadm offset after the last record", "%v %d %s", err, o.Offset, code(o.Err))
	_, _, c := w.listOffset("diff-times", 1, -1)
	w.note("offset of a partition the topic does not have", "%s", c)
	_, _, c = w.listOffset("nope", 0, -1)
	w.note("offset of a missing topic", "%s", c)
}

// outOfRange: fetch past the end and before the start, the start moved by
// retention.
func (w *workload) outOfRange(base time.Time) {
	ctx := w.ctx
	for _, f := range []struct {
		topic     string
		partition int32
		offset    int64
	}{{"diff", 0, 1000}, {"diff", 0, 23}, {"diff", 0, 22}, {"diff", 0, -1}, {"diff", 7, 0}, {"nope", 0, 0}} {
		w.note(fmt.Sprintf("fetch %s/%d@%d", f.topic, f.partition, f.offset), "%s", w.fetch(f.topic, f.partition, f.offset, 1<<20))
	}
	// Partition limits: the first batch comes whole whatever the limit
	// (KIP-74); after it, only batches that fit (Kafka may cut the last
	// one short, which a client discards).
	for _, limit := range []int32{1, 300, 2000} {
		w.note(fmt.Sprintf("fetch diff/1@0 with a partition limit of %d bytes", limit), "%s", w.fetch("diff", 1, 0, limit))
	}

	// Retention: records older than retention.ms are deleted, the
	// active segment too once all of it has expired, and the log start
	// moves past them.
	hour := "3600000"
	r, _ := w.adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &hour}, "diff-expire")
	w.note("create diff-expire", "%s", code(r.Err))
	w.waitTopic("diff-expire", 1)
	old := base.Add(-48 * time.Hour)
	for i := 0; i < 3; i++ {
		rr, err := w.cl.ProduceSync(ctx, &kgo.Record{Topic: "diff-expire", Value: []byte("old"), Timestamp: old.Add(time.Duration(i) * time.Second)}).First()
		w.note(fmt.Sprintf("produce expired record %d", i), "%s offset %d", code(err), rr.Offset)
	}
	w.waitStart("diff-expire", 3)
	for _, q := range []struct {
		what string
		ts   int64
	}{{"earliest", -2}, {"latest", -1}, {"the first expired record's time", old.UnixMilli()}} {
		off, ts, c := w.listOffset("diff-expire", 0, q.ts)
		w.note("expired: offset for "+q.what, "%s offset %d timestamp %d", c, off, ts)
	}
	for _, off := range []int64{0, 2, 3, 4} {
		w.note(fmt.Sprintf("expired: fetch @%d", off), "%s", w.fetch("diff-expire", 0, off, 1<<20))
	}
	rr, err := w.cl.ProduceSync(ctx, &kgo.Record{Topic: "diff-expire", Value: []byte("new"), Timestamp: base}).First()
	w.note("produce after expiry", "%s offset %d", code(err), rr.Offset)

	// retention.ms=0 expires every record older than now. (retention.bytes=0
	// is not compared: Kafka then deletes the active segment too, ours
	// keeps it, and a deletion that never comes cannot be waited for.
	// docs/COMPATIBILITY.md says so.)
	zero := "0"
	r, _ = w.adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &zero}, "diff-purge")
	w.note("create diff-purge", "%s", code(r.Err))
	w.waitTopic("diff-purge", 1)
	for i := 0; i < 2; i++ {
		rr, err := w.cl.ProduceSync(ctx, &kgo.Record{Topic: "diff-purge", Value: []byte("gone"), Timestamp: base}).First()
		w.note(fmt.Sprintf("produce to diff-purge %d", i), "%s offset %d", code(err), rr.Offset)
	}
	w.waitStart("diff-purge", 2)
	w.note("diff-purge after retention", "%s", w.fetch("diff-purge", 0, 2, 1<<20))
}

// waitStart waits, bounded, until retention (in the background on both
// brokers) has moved the log start of partition 0 of topic to offset.
func (w *workload) waitStart(topic string, offset int64) {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		off, _, _ := w.listOffset(topic, 0, -2)
		if off == offset {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("retention did not move the start of %s to %d within a minute (start offset %d)", topic, offset, off)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// recreate: DeleteTopics, then a topic of the same name starts again at
// offset 0 with a new id.
func (w *workload) recreate() {
	ctx := w.ctx
	r, _ := w.adm.CreateTopic(ctx, 1, 1, nil, "diff-again")
	w.note("create diff-again", "%s", code(r.Err))
	firstID := r.ID
	w.waitTopic("diff-again", 1)
	for i := 0; i < 2; i++ {
		rr, err := w.cl.ProduceSync(ctx, &kgo.Record{Topic: "diff-again", Value: []byte("first life")}).First()
		w.note(fmt.Sprintf("produce %d before delete", i), "%s offset %d", code(err), rr.Offset)
	}
	dr, err := w.adm.DeleteTopics(ctx, "diff-again")
	w.note("delete diff-again", "%v %s", err, code(dr["diff-again"].Err))
	w.waitNoTopic("diff-again")
	dr, _ = w.adm.DeleteTopics(ctx, "diff-again")
	w.note("delete diff-again again", "%s", code(dr["diff-again"].Err))
	w.note("fetch a deleted topic", "%s", w.fetch("diff-again", 0, 0, 1<<20))
	r, _ = w.adm.CreateTopic(ctx, 1, 1, nil, "diff-again")
	w.note("re-create diff-again", "%s new id=%v", code(r.Err), r.ID != firstID && r.ID != kadm.TopicID{})
	w.waitTopicID("diff-again", r.ID)
	off, _, c := w.listOffset("diff-again", 0, -1)
	w.note("end offset after re-create", "%s %d", c, off)
	rr, err := w.cl.ProduceSync(ctx, &kgo.Record{Topic: "diff-again", Value: []byte("second life")}).First()
	w.note("produce after re-create", "%s offset %d", code(err), rr.Offset)
	w.note("fetch after re-create", "%s", w.fetch("diff-again", 0, 0, 1<<20))
}

// partitions: CreatePartitions grows a topic, refuses to shrink it or keep
// its count, and answers for a missing topic.
func (w *workload) partitions() {
	ctx := w.ctx
	r, _ := w.adm.CreateTopic(ctx, 2, 1, nil, "diff-grow")
	w.note("create diff-grow", "%s", code(r.Err))
	w.waitTopic("diff-grow", 2)
	cp, err := w.adm.ValidateUpdatePartitions(ctx, 4, "diff-grow")
	w.note("validate-only grow to 4", "%v %s", err, code(cp["diff-grow"].Err))
	w.note("partitions after validate-only", "%d", w.partitionCount("diff-grow"))
	cp, err = w.adm.UpdatePartitions(ctx, 4, "diff-grow")
	w.note("grow to 4", "%v %s", err, code(cp["diff-grow"].Err))
	w.waitTopic("diff-grow", 4)
	w.describePartitions("diff-grow")
	rr, err := w.cl.ProduceSync(ctx, &kgo.Record{Topic: "diff-grow", Partition: 3, Value: []byte("x")}).First()
	w.note("produce to a new partition", "%s offset %d", code(err), rr.Offset)
	for _, n := range []int{3, 4, 0} {
		cp, _ = w.adm.UpdatePartitions(ctx, n, "diff-grow")
		w.note(fmt.Sprintf("set partitions to %d of 4", n), "%s", code(cp["diff-grow"].Err))
	}
	cp, _ = w.adm.UpdatePartitions(ctx, 4, "nope")
	w.note("grow a missing topic", "%s", code(cp["nope"].Err))
	w.note("partitions at the end", "%d", w.partitionCount("diff-grow"))
}

// configs: DescribeConfigs of topics with and without overrides, after
// IncrementalAlterConfigs, and of a missing topic.
func (w *workload) configs() {
	ctx := w.ctx
	w.describeConfigs("defaults", "diff", nil)
	hour, mib := "3600000", "1048576"
	r, _ := w.adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &hour, "retention.bytes": &mib}, "diff-conf")
	w.note("create diff-conf", "%s", code(r.Err))
	for _, name := range []string{"retention.ms", "retention.bytes"} {
		c := r.Configs[name]
		w.note("create diff-conf: config "+name, "value=%s source=%v", c.MaybeValue(), c.Source)
	}
	w.waitTopic("diff-conf", 1)
	w.describeConfigs("overrides", "diff-conf", nil)
	w.describeConfigs("named", "diff-conf", []string{"retention.ms", "no.such.config"})

	two := "7200000"
	alter := func(what string, cs ...kadm.AlterConfig) {
		ar, err := w.adm.AlterTopicConfigs(ctx, cs, "diff-conf")
		c := "no answer"
		if len(ar) == 1 {
			c = code(ar[0].Err)
		}
		w.note("alter configs: "+what, "%v %s", err, c)
	}
	alter("set retention.ms", kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: &two})
	alter("delete retention.bytes", kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "retention.bytes"})
	bad := "abc"
	alter("set retention.ms=abc", kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: &bad})
	w.waitConfigs("diff-conf", func(cs map[string]kmsg.DescribeConfigsResponseResourceConfig) bool {
		return deref(cs["retention.ms"].Value) == two && cs["retention.bytes"].Source != kmsg.ConfigSourceDynamicTopicConfig
	}, "shows the altered configs")
	w.describeConfigs("altered", "diff-conf", nil)
	ar, _ := w.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &two}}, "nope")
	for _, a := range ar {
		w.note("alter configs of a missing topic", "%s", code(a.Err))
	}
	w.describeConfigs("missing", "nope", nil)
}

// groups: the group tools (commit and reset offsets, lag, list, describe,
// delete).
func (w *workload) groups() {
	ctx, adm := w.ctx, w.adm
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "diff", Partition: 0, At: 5, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: "diff", Partition: 1, At: 3, LeaderEpoch: -1, Metadata: "m"})
	committed, err := adm.CommitOffsets(ctx, "tools", commit)
	w.note("commit offsets", "%v", err)
	var commits []string
	committed.Each(func(o kadm.OffsetResponse) {
		commits = append(commits, fmt.Sprintf("%s/%d: %s", o.Topic, o.Partition, code(o.Err)))
	})
	sort.Strings(commits)
	w.note("committed", "%v", commits)
	missingTopic := kadm.Offsets{}
	missingTopic.Add(kadm.Offset{Topic: "nope", Partition: 0, At: 1, LeaderEpoch: -1})
	committed, _ = adm.CommitOffsets(ctx, "tools", missingTopic)
	committed.Each(func(o kadm.OffsetResponse) { w.note("commit to a missing topic", "%s", code(o.Err)) })
	fetched, err := adm.FetchOffsets(ctx, "tools")
	w.note("fetch offsets", "%v", err)
	for p := int32(0); p < 3; p++ {
		o, ok := fetched.Lookup("diff", p)
		w.note(fmt.Sprintf("fetched %d", p), "present=%v at=%d metadata=%q", ok, o.At, o.Metadata)
	}
	lag, err := adm.Lag(ctx, "tools")
	w.note("lag", "%v", err)
	if gl, ok := lag["tools"]; ok {
		w.note("lag of tools", "state %s, total %d", gl.State, gl.Lag.Total())
	}
	listed, err := adm.ListGroups(ctx)
	w.note("list groups", "%v %v", err, listed.Groups())
	described, err := adm.DescribeGroups(ctx, "tools", "never-seen")
	w.note("describe groups", "%v tools=%s never-seen=%s", err, described["tools"].State, described["never-seen"].State)
	od, err := adm.DeleteOffsets(ctx, "tools", kadm.TopicsSet{"diff": {1: {}}})
	e, _ := od.Lookup("diff", 1)
	w.note("delete the offset of diff/1", "%s %s", code(err), code(e))
	fetched, _ = adm.FetchOffsets(ctx, "tools")
	_, gone := fetched.Lookup("diff", 1)
	w.note("diff/1 after its offset was deleted", "present=%v", gone)
	od, err = adm.DeleteOffsets(ctx, "never-seen", kadm.TopicsSet{"diff": {0: {}}})
	e, _ = od.Lookup("diff", 0)
	w.note("delete an offset of a group never seen", "%s %s", code(err), code(e))
	fetched, err = adm.FetchOffsets(ctx, "never-seen")
	w.note("fetch the offsets of a group never seen", "%v %d", err, len(fetched))
	deleted, _ := adm.DeleteGroups(ctx, "tools")
	w.note("delete group", "%s", code(deleted["tools"].Err))
	deleted, _ = adm.DeleteGroups(ctx, "tools")
	w.note("delete group again", "%s", code(deleted["tools"].Err))
	fetched, _ = adm.FetchOffsets(ctx, "tools")
	o, ok := fetched.Lookup("diff", 0)
	w.note("fetch offsets after delete", "present=%v at=%d", ok && o.At >= 0, o.At)
}

// listAll lists every topic at the end of the workload, as a Metadata
// request for all topics answers.
func (w *workload) listAll() {
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(w.ctx, w.cl)
	if err != nil {
		w.note("list all topics", "%s", code(err))
		return
	}
	var user, internal []string
	for _, t := range resp.Topics {
		if t.IsInternal {
			internal = append(internal, fmt.Sprintf("%s(%s)", deref(t.Topic), codeOf(t.ErrorCode)))
		} else {
			user = append(user, fmt.Sprintf("%s(%s)", deref(t.Topic), codeOf(t.ErrorCode)))
		}
	}
	sort.Strings(user)
	sort.Strings(internal)
	w.note("list all topics", "%v", user)
	w.note("list all topics: internal ones", "%v", internal)
}

// describePartitions notes a topic's partitions as Metadata lists them.
// Node ids differ (Kafka's node is 1, ours 0): a leader or replica is
// noted as whether it is the cluster's one broker.
func (w *workload) describePartitions(topic string) {
	mt, brokers, err := w.metadata(topic)
	if err != nil {
		w.note("metadata of "+topic, "%s", code(err))
		return
	}
	if len(brokers) != 1 {
		w.t.Fatalf("metadata lists %d brokers, want 1", len(brokers))
	}
	node := brokers[0].NodeID
	is := func(ids []int32) string {
		return fmt.Sprintf("%d, the broker=%v", len(ids), slices.Equal(ids, []int32{node}))
	}
	w.note("metadata of "+topic, "%s internal=%v partitions=%d id set=%v", codeOf(mt.ErrorCode), mt.IsInternal, len(mt.Partitions), mt.TopicID != [16]byte{})
	// Kafka lists partitions in no particular order.
	slices.SortFunc(mt.Partitions, func(a, b kmsg.MetadataResponseTopicPartition) int { return int(a.Partition - b.Partition) })
	for _, p := range mt.Partitions {
		w.note(fmt.Sprintf("metadata of %s/%d", topic, p.Partition), "%s leader is the broker=%v epoch=%d replicas=%s isr=%s offline=%d",
			codeOf(p.ErrorCode), p.Leader == node, p.LeaderEpoch, is(p.Replicas), is(p.ISR), len(p.OfflineReplicas))
	}
}

// describeConfigs notes the configs of a topic as DescribeConfigs v4 (with
// synonyms, as kadm asks) answers them: only the configs our broker
// implements are compared (Kafka has about forty; see knownDifferences).
func (w *workload) describeConfigs(label, topic string, names []string) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, names
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(w.ctx, w.cl)
	what := fmt.Sprintf("describe configs (%s) of %s", label, topic)
	if err != nil || len(resp.Resources) != 1 {
		w.note(what, "%s", code(err))
		return
	}
	res := resp.Resources[0]
	var listed []string
	for _, c := range res.Configs {
		if _, ok := lookupTopicConfig(c.Name); ok || names != nil {
			listed = append(listed, c.Name)
		}
	}
	// Kafka lists configs in no particular order.
	sort.Strings(listed)
	w.note(what, "%s listed=%v", codeOf(res.ErrorCode), listed)
	for _, c := range res.Configs {
		if _, ok := lookupTopicConfig(c.Name); !ok {
			continue
		}
		var syn []string
		for _, s := range c.ConfigSynonyms {
			syn = append(syn, fmt.Sprintf("%s=%s(%v)", s.Name, deref(s.Value), s.Source))
		}
		w.note(what+": "+c.Name, "value=%s source=%v read-only=%v sensitive=%v type=%v synonyms=%v",
			deref(c.Value), c.Source, c.ReadOnly, c.IsSensitive, c.ConfigType, syn)
	}
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

// listOffset sends a ListOffsets request for one partition and returns the
// answer's offset, timestamp and error.
func (w *workload) listOffset(topic string, partition int32, ts int64) (int64, int64, string) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, ts, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err != nil {
		return -1, -1, code(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return -1, -1, "malformed answer"
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.Timestamp, codeOf(p.ErrorCode)
}

// fetch sends one Fetch request for one partition and describes the
// answer: the error, the partition's start and high watermark, and the
// offsets of the records returned.
func (w *workload) fetch(topic string, partition int32, offset int64, limit int32) string {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = -1, 1, 1<<20
	req.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = partition, offset, limit, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err != nil {
		return code(err)
	}
	if resp.ErrorCode != 0 {
		return codeOf(resp.ErrorCode)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return "malformed answer"
	}
	p := resp.Topics[0].Partitions[0]
	var offsets []int64
	fp2, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic, Partition: partition, KeepControlRecords: true}, &p, kgo.DefaultDecompressor(), nil)
	for _, r := range fp2.Records {
		offsets = append(offsets, r.Offset)
	}
	return fmt.Sprintf("%s start=%d hwm=%d lso=%d records at %v", codeOf(p.ErrorCode), p.LogStartOffset, p.HighWatermark, p.LastStableOffset, offsets)
}

// batchShape describes the record batches of a partition as a fetch from
// offset 0 returns them: each batch's base offset and record count.
func (w *workload) batchShape(topic string, partition int32) string {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = -1, 1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = partition, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Sprintf("fetch failed: %v", err)
	}
	data := resp.Topics[0].Partitions[0].RecordBatches
	var shape []string
	for len(data) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(data); err != nil {
			return fmt.Sprintf("%v, then a malformed batch: %v", shape, err)
		}
		shape = append(shape, fmt.Sprintf("%d+%d codec=%d", b.FirstOffset, b.NumRecords, b.Attributes&7))
		data = data[12+int(b.Length):]
	}
	return fmt.Sprint(shape)
}

// metadata asks a broker for one topic's metadata, straight, not through
// kadm's cache, and never asking for auto-creation.
func (w *workload) metadata(topic string) (kmsg.MetadataResponseTopic, []kmsg.MetadataResponseBroker, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err != nil {
		return kmsg.MetadataResponseTopic{}, nil, err
	}
	if len(resp.Topics) != 1 {
		return kmsg.MetadataResponseTopic{}, nil, fmt.Errorf("metadata answered %d topics", len(resp.Topics))
	}
	return resp.Topics[0], resp.Brokers, nil
}

// metadataCode is the error Metadata answers for topic.
func (w *workload) metadataCode(topic string) string {
	mt, _, err := w.metadata(topic)
	if err != nil {
		return code(err)
	}
	return codeOf(mt.ErrorCode)
}

func (w *workload) partitionCount(topic string) int {
	mt, _, _ := w.metadata(topic)
	return len(mt.Partitions)
}

// Apache Kafka's metadata is eventually consistent: a broker lists a topic
// created, grown or deleted a moment after the controller has answered.
// These waits (bounded) let the workload observe the state the change
// made, not a race; our broker is there at once.

func (w *workload) waitTopic(topic string, partitions int) {
	w.waitMetadata(topic, func(mt kmsg.MetadataResponseTopic) bool {
		if mt.ErrorCode != 0 || len(mt.Partitions) != partitions {
			return false
		}
		for _, p := range mt.Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return false
			}
		}
		return true
	}, fmt.Sprintf("lists %s with %d partitions and their leaders", topic, partitions))
}

func (w *workload) waitTopicID(topic string, id [16]byte) {
	w.waitMetadata(topic, func(mt kmsg.MetadataResponseTopic) bool {
		return mt.ErrorCode == 0 && mt.TopicID == id && len(mt.Partitions) > 0 && mt.Partitions[0].Leader >= 0
	}, fmt.Sprintf("lists %s with its new id", topic))
}

func (w *workload) waitNoTopic(topic string) {
	w.waitMetadata(topic, func(mt kmsg.MetadataResponseTopic) bool {
		return mt.ErrorCode == kerr.UnknownTopicOrPartition.Code
	}, fmt.Sprintf("no longer lists %s", topic))
}

// waitConfigs waits until DescribeConfigs of topic satisfies done: Kafka
// applies an altered config to a broker's view a moment after answering.
func (w *workload) waitConfigs(topic string, done func(map[string]kmsg.DescribeConfigsResponseResourceConfig) bool, what string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		req.Resources = append(req.Resources, rr)
		resp, err := req.RequestWith(w.ctx, w.cl)
		if err == nil && len(resp.Resources) == 1 {
			cs := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
			for _, c := range resp.Resources[0].Configs {
				cs[c.Name] = c
			}
			if done(cs) {
				return
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("DescribeConfigs of %s never %s within 30 s (last error %v)", topic, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *workload) waitMetadata(topic string, done func(kmsg.MetadataResponseTopic) bool, what string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mt, _, err := w.metadata(topic)
		if err == nil && done(mt) {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("metadata never %s within 30 s (last: %v, error %s)", what, err, codeOf(mt.ErrorCode))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// advertisedVersions are the API versions our broker advertises, to pin a
// client to them: pinned, Apache Kafka and ours get identical requests.
func advertisedVersions() *kversion.Versions {
	apiv := kmsg.NewPtrApiVersionsResponse()
	apiv.ApiKeys = apiKeys()
	return kversion.FromApiVersionsResponse(apiv)
}
