package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTopicAdministration(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr := b.Addr().String()
	adm := kadm.NewClient(newClient(t, addr))
	ctx := context.Background()

	// Create with configs; a second create is TOPIC_ALREADY_EXISTS.
	resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": ptr("3600000")}, "plant-a.press")
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	if resp.NumPartitions != 3 || resp.ReplicationFactor != 1 || resp.ID == [16]byte{} {
		t.Fatalf("create response %+v", resp)
	}
	resp, _ = adm.CreateTopic(ctx, 3, 1, nil, "plant-a.press")
	if !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v", resp.Err)
	}

	refused := []struct {
		name       string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       error
		msg        string
	}{
		{"bad/name", 1, 1, nil, kerr.InvalidTopicException, "character"},
		{"plant-a_press", 1, 1, nil, kerr.InvalidTopicException, "collides"},
		{"rf-three", 1, 3, nil, kerr.InvalidReplicationFactor, "1 broker"},
		{"zero-partitions", 0, 1, nil, kerr.InvalidPartitions, "partitions"},
		{"compact", 1, 1, map[string]*string{"cleanup.policy": ptr("compact")}, kerr.InvalidConfig, "compaction is not implemented"},
		{"unknown-config", 1, 1, map[string]*string{"min.insync.replicas": ptr("2")}, kerr.InvalidConfig, "min.insync.replicas"},
		{"bad-value", 1, 1, map[string]*string{"retention.ms": ptr("soon")}, kerr.InvalidConfig, "not an integer"},
	}
	for _, r := range refused {
		t.Run("refuse "+r.name, func(t *testing.T) {
			// kadm returns the topic's error both as err and in resp.
			resp, _ := adm.CreateTopic(ctx, r.partitions, r.rf, r.configs, r.name)
			if !errors.Is(resp.Err, r.want) || !strings.Contains(resp.ErrMessage, r.msg) {
				t.Fatalf("error %v %q, want %v containing %q", resp.Err, resp.ErrMessage, r.want, r.msg)
			}
		})
	}

	// Describe: the override is a dynamic topic config, the rest defaults.
	rcs, err := adm.DescribeTopicConfigs(ctx, "plant-a.press")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("plant-a.press", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe: %v %v", err, rc.Err)
	}
	got := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		got[c.Key] = c
	}
	if c := got["retention.ms"]; c.MaybeValue() != "3600000" || c.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
		t.Fatalf("retention.ms %q from %v", c.MaybeValue(), c.Source)
	}
	if c := got["segment.bytes"]; c.MaybeValue() != "1073741824" || c.Source.String() != "DEFAULT_CONFIG" {
		t.Fatalf("segment.bytes %q from %v", c.MaybeValue(), c.Source)
	}

	// Alter incrementally; compact is refused with a clear message.
	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: ptr("1048576")}, {Op: kadm.DeleteConfig, Name: "retention.ms"}}, "plant-a.press")
	if err != nil || alter[0].Err != nil {
		t.Fatalf("alter: %v %v", err, alter[0].Err)
	}
	alter, _ = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: ptr("compact")}}, "plant-a.press")
	if !errors.Is(alter[0].Err, kerr.InvalidConfig) || !strings.Contains(alter[0].ErrMessage, "compaction") {
		t.Fatalf("alter to compact: %v %q", alter[0].Err, alter[0].ErrMessage)
	}

	// Partitions grow, never shrink.
	cp, err := adm.UpdatePartitions(ctx, 5, "plant-a.press")
	if err != nil || cp["plant-a.press"].Err != nil {
		t.Fatalf("grow partitions: %v %v", err, cp["plant-a.press"].Err)
	}
	cp, _ = adm.UpdatePartitions(ctx, 2, "plant-a.press")
	if !errors.Is(cp["plant-a.press"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrink partitions: %v", cp["plant-a.press"].Err)
	}

	// Everything above survives a restart.
	b.Close()
	b2 := startBroker(t, dir)
	adm2 := kadm.NewClient(newClient(t, b2.Addr().String()))
	td, err := adm2.ListTopics(ctx, "plant-a.press")
	if err != nil || len(td["plant-a.press"].Partitions) != 5 {
		t.Fatalf("after restart: %v, %d partitions", err, len(td["plant-a.press"].Partitions))
	}
	rcs, _ = adm2.DescribeTopicConfigs(ctx, "plant-a.press")
	rc, _ = rcs.On("plant-a.press", nil)
	for _, c := range rc.Configs {
		if c.Key == "retention.bytes" && c.MaybeValue() != "1048576" {
			t.Fatalf("retention.bytes after restart: %q", c.MaybeValue())
		}
		if c.Key == "retention.ms" && c.Source.String() == "DYNAMIC_TOPIC_CONFIG" {
			t.Fatal("deleted retention.ms override came back after restart")
		}
	}

	// Delete removes the topic and its directories.
	dr, err := adm2.DeleteTopics(ctx, "plant-a.press")
	if err != nil || dr["plant-a.press"].Err != nil {
		t.Fatalf("delete: %v %v", err, dr["plant-a.press"].Err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "plant-a.press-*")); len(m) != 0 {
		t.Fatalf("partition directories left after delete: %v", m)
	}
	dr, _ = adm2.DeleteTopics(ctx, "plant-a.press")
	if !errors.Is(dr["plant-a.press"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete twice: %v", dr["plant-a.press"].Err)
	}
}

// TestListOffsetsAndRetention produces into small segments, checks the
// start, end and by-time offsets, then lets retention.bytes delete old
// segments and checks that the log start moved and reads below it are
// OFFSET_OUT_OF_RANGE.
func TestListOffsetsAndRetention(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	createTopic(t, addr, "ret", 1, map[string]*string{"segment.bytes": ptr("4096")})
	c := dialRaw(t, addr)
	// Recent timestamps, so that retention.ms (7 days) keeps them and
	// only retention.bytes decides.
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < 40; i++ {
		got := producePartition(c.roundTrip(produceReq(7, -1, "ret", 0, makeBatch(testBatch{records: 5, timestamp: t0 + int64(1000*(i+1)), value: make([]byte, 200)}))))
		if got.ErrorCode != 0 || got.BaseOffset != int64(5*i) {
			t.Fatalf("batch %d: error %d offset %d", i, got.ErrorCode, got.BaseOffset)
		}
	}
	adm := kadm.NewClient(newClient(t, addr))
	ctx := context.Background()
	start, _ := adm.ListStartOffsets(ctx, "ret")
	end, _ := adm.ListEndOffsets(ctx, "ret")
	if o, _ := start.Lookup("ret", 0); o.Offset != 0 {
		t.Fatalf("start offset %d", o.Offset)
	}
	if o, _ := end.Lookup("ret", 0); o.Offset != 200 {
		t.Fatalf("end offset %d", o.Offset)
	}
	// Batch i holds timestamps t0+1000(i+1) .. t0+1000(i+1)+4.
	byTime, _ := adm.ListOffsetsAfterMilli(ctx, t0+10_002, "ret")
	if o, _ := byTime.Lookup("ret", 0); o.Offset != 45 {
		t.Fatalf("offset for time 10002: %d, want 45 (the batch holding it)", o.Offset)
	}
	byTime, _ = adm.ListOffsetsAfterMilli(ctx, t0+1_000_000, "ret")
	if o, _ := byTime.Lookup("ret", 0); o.Offset != 200 {
		t.Fatalf("offset for a time after every record: %d, want the end offset 200", o.Offset)
	}

	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: ptr("8192")}}, "ret")
	if err != nil || alter[0].Err != nil {
		t.Fatalf("alter: %v %v", err, alter[0].Err)
	}
	b.applyRetention()
	start, _ = adm.ListStartOffsets(ctx, "ret")
	o, _ := start.Lookup("ret", 0)
	if o.Offset <= 0 || o.Offset >= 200 {
		t.Fatalf("log start after retention: %d, want within (0, 200)", o.Offset)
	}
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"ret": {0: kgo.NewOffset().At(0)}}), kgo.ConsumeResetOffset(kgo.NoResetOffset()))
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(fctx)
	var fetchErr error
	fs.EachError(func(_ string, _ int32, err error) { fetchErr = err })
	if !errors.Is(fetchErr, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch below the log start: %v, want OFFSET_OUT_OF_RANGE", fetchErr)
	}
	// Reading from the new start returns the retained records.
	got := consumeN(t, addr, "ret", int(200-o.Offset))
	if got[0].Offset != o.Offset {
		t.Fatalf("first retained offset %d, want %d", got[0].Offset, o.Offset)
	}
}

// TestFetchLongPoll: a fetch that finds nothing waits, and returns as soon
// as a produce makes records visible.
func TestFetchLongPoll(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	createTopic(t, addr, "poll", 1, nil)
	cons := newClient(t, addr, kgo.ConsumeTopics("poll"), kgo.FetchMaxWait(30*time.Second))
	got := make(chan *kgo.Record, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if rs := cons.PollFetches(ctx).Records(); len(rs) > 0 {
				got <- rs[0]
				return
			}
		}
		got <- nil
	}()
	prod := newClient(t, addr, kgo.DefaultProduceTopic("poll"))
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Value: []byte("wake")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r == nil || string(r.Value) != "wake" {
		t.Fatalf("long-polling consumer got %v", r)
	}
}

// TestDataDirLocked: a second broker on the same data dir fails with an
// error that says so and names the directory.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	startBroker(t, dir)
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", dir
	_, err := New(cfg)
	if err == nil || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second broker on the same dir: %v", err)
	}
	// A data dir path that is a file is a clear error too.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	cfg.DataDir = file
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("data dir that is a file: %v", err)
	}
}

// TestAutoCreateTopics: off by default (producing to an unknown topic fails
// with UNKNOWN_TOPIC_OR_PARTITION); on, a metadata request creates the topic
// with DefaultPartitions.
func TestAutoCreateTopics(t *testing.T) {
	ctx := context.Background()
	off := startBroker(t, "")
	p := newClient(t, off.Addr().String(), kgo.DefaultProduceTopic("auto"), kgo.RecordDeliveryTimeout(2*time.Second))
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("produce to an unknown topic with auto-creation off: %v", err)
	}
	on := startBroker(t, "", func(c *Config) { c.AutoCreateTopics, c.DefaultPartitions = true, 3 })
	p = newClient(t, on.Addr().String(), kgo.DefaultProduceTopic("auto"), kgo.AllowAutoTopicCreation())
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce with auto-creation on: %v", err)
	}
	td, err := kadm.NewClient(newClient(t, on.Addr().String())).ListTopics(ctx, "auto")
	if err != nil || len(td["auto"].Partitions) != 3 {
		t.Fatalf("auto-created topic: %v, %d partitions, want 3", err, len(td["auto"].Partitions))
	}
}

// TestPartitionLimit: CreateTopics and CreatePartitions beyond
// max_partitions get POLICY_VIOLATION with a message naming the limit, and
// each refusal is counted; up to the limit they succeed.
func TestPartitionLimit(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.MaxPartitions = 5 })
	adm := kadm.NewClient(newClient(t, b.Addr().String()))
	ctx := context.Background()
	if resp, err := adm.CreateTopic(ctx, 3, 1, nil, "a"); err != nil || resp.Err != nil {
		t.Fatalf("create a: %v %v", err, resp.Err)
	}
	resp, _ := adm.CreateTopic(ctx, 3, 1, nil, "b")
	if !errors.Is(resp.Err, kerr.PolicyViolation) || !strings.Contains(resp.ErrMessage, "max_partitions 5 (it has 3)") {
		t.Fatalf("create b beyond the limit: %v %q, want POLICY_VIOLATION naming max_partitions 5", resp.Err, resp.ErrMessage)
	}
	vresp, err := adm.ValidateCreateTopics(ctx, 3, 1, nil, "c")
	if err != nil || !errors.Is(vresp["c"].Err, kerr.PolicyViolation) {
		t.Fatalf("validate-only create beyond the limit: %v %v", err, vresp)
	}
	presp, err := adm.CreatePartitions(ctx, 3, "a") // to 6
	if err != nil || !errors.Is(presp["a"].Err, kerr.PolicyViolation) {
		t.Fatalf("create partitions beyond the limit: %v %+v", err, presp["a"])
	}
	if presp, err := adm.UpdatePartitions(ctx, 5, "a"); err != nil || presp["a"].Err != nil {
		t.Fatalf("grow a to the limit: %v %+v", err, presp["a"])
	}
	if got := limitHits(t, b, limitMaxPartitions); got != 3 {
		t.Fatalf("max_partitions hits %v, want 3", got)
	}
}
