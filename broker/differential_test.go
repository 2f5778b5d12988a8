package broker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestDifferentialAgainstKfake runs one workload against kfake (franz-go's
// reference broker) and against ours, with the same API versions, and
// compares what a client observes: records, offsets, and error codes.
func TestDifferentialAgainstKfake(t *testing.T) {
	ref, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	ours := startBroker(t, "")

	// Both clients use the versions our broker advertises, so the two
	// brokers answer the same requests.
	apiv := kmsg.NewPtrApiVersionsResponse()
	apiv.ApiKeys = apiKeys()
	versions := kversion.FromApiVersionsResponse(apiv)

	want := differentialWorkload(t, ref.ListenAddrs()[0], versions)
	got := differentialWorkload(t, ours.Addr().String(), versions)
	if len(want) != len(got) {
		t.Fatalf("kfake observed %d things, ours %d", len(want), len(got))
	}
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("observation %d differs:\n kfake: %s\n ours:  %s", i, want[i], got[i])
		}
	}
}

// differentialWorkload runs the workload against addr and returns every
// observation as a line of text.
func differentialWorkload(t *testing.T, addr string, versions *kversion.Versions) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var obs []string
	note := func(format string, args ...any) { obs = append(obs, fmt.Sprintf(format, args...)) }
	code := func(err error) string {
		if err == nil {
			return "ok"
		}
		if ke, ok := err.(*kerr.Error); ok {
			return ke.Message
		}
		return "client error"
	}
	cl := newClient(t, addr, kgo.MaxVersions(versions), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)

	// Topic administration.
	r, err := adm.CreateTopic(ctx, 3, 1, nil, "diff")
	note("create diff: %v %s", err, code(r.Err))
	r, _ = adm.CreateTopic(ctx, 3, 1, nil, "diff")
	note("create diff again: %s", code(r.Err))
	// (kfake accepts any topic name, where Kafka and ours refuse
	// "bad name!" with INVALID_TOPIC_EXCEPTION; TestTopicAdministration
	// covers that, so it is not compared here.)
	r, _ = adm.CreateTopic(ctx, 1, 5, nil, "rf5")
	note("create rf 5: %s", code(r.Err))
	cp, _ := adm.UpdatePartitions(ctx, 2, "diff")
	note("shrink partitions: %s", code(cp["diff"].Err))
	cp, _ = adm.UpdatePartitions(ctx, 4, "nope")
	note("grow missing topic: %s", code(cp["nope"].Err))
	dr, _ := adm.DeleteTopics(ctx, "nope")
	note("delete missing topic: %s", code(dr["nope"].Err))
	td, err := adm.ListTopics(ctx, "diff")
	note("metadata diff: %v partitions=%d", err, len(td["diff"].Partitions))

	// Produce to chosen partitions, synchronously, so offsets are
	// deterministic.
	base := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 60; i++ {
		rec := &kgo.Record{
			Topic:     "diff",
			Partition: int32(i % 3),
			Key:       []byte(fmt.Sprintf("k%d", i%5)),
			Value:     []byte(strings.Repeat("v", i)),
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}},
			Timestamp: base.Add(time.Duration(i) * time.Second),
		}
		res := cl.ProduceSync(ctx, rec)
		rr, err := res.First()
		if err != nil {
			note("produce %d: %s", i, code(err))
			continue
		}
		note("produce %d: partition %d offset %d", i, rr.Partition, rr.Offset)
	}

	// Offsets.
	starts, _ := adm.ListStartOffsets(ctx, "diff")
	ends, _ := adm.ListEndOffsets(ctx, "diff")
	for p := int32(0); p < 3; p++ {
		s, _ := starts.Lookup("diff", p)
		e, _ := ends.Lookup("diff", p)
		note("partition %d: start %d end %d", p, s.Offset, e.Offset)
	}
	missing, _ := adm.ListEndOffsets(ctx, "nope")
	missing.Each(func(o kadm.ListedOffset) { note("end offset of missing topic: %s", code(o.Err)) })
	after, _ := adm.ListOffsetsAfterMilli(ctx, base.Add(1000*time.Hour).UnixMilli(), "diff")
	for p := int32(0); p < 3; p++ {
		o, _ := after.Lookup("diff", p)
		note("offset after the last record, partition %d: %d %s", p, o.Offset, code(o.Err))
	}

	// Consume everything back.
	cons := newClient(t, addr, kgo.MaxVersions(versions), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"diff": {0: kgo.NewOffset().At(0), 1: kgo.NewOffset().At(0), 2: kgo.NewOffset().At(0)},
	}))
	var recs []string
	for len(recs) < 60 && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachError(func(_ string, p int32, err error) { note("fetch error partition %d: %s", p, code(err)) })
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, fmt.Sprintf("p%d@%d key=%s len=%d hdr=%s ts=%d", r.Partition, r.Offset, r.Key, len(r.Value), r.Headers[0].Value, r.Timestamp.UnixMilli()))
		})
	}
	sort.Strings(recs)
	obs = append(obs, recs...)

	// Group tools: commit and reset offsets, lag, list, describe, delete.
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "diff", Partition: 0, At: 5, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: "diff", Partition: 1, At: 3, LeaderEpoch: -1, Metadata: "m"})
	committed, err := adm.CommitOffsets(ctx, "tools", commit)
	note("commit offsets: %v", err)
	var commits []string
	committed.Each(func(o kadm.OffsetResponse) {
		commits = append(commits, fmt.Sprintf("commit %s/%d: %s", o.Topic, o.Partition, code(o.Err)))
	})
	sort.Strings(commits)
	obs = append(obs, commits...)
	missingTopic := kadm.Offsets{}
	missingTopic.Add(kadm.Offset{Topic: "nope", Partition: 0, At: 1, LeaderEpoch: -1})
	committed, _ = adm.CommitOffsets(ctx, "tools", missingTopic)
	committed.Each(func(o kadm.OffsetResponse) { note("commit to a missing topic: %s", code(o.Err)) })
	fetched, err := adm.FetchOffsets(ctx, "tools")
	note("fetch offsets: %v", err)
	for p := int32(0); p < 3; p++ {
		o, ok := fetched.Lookup("diff", p)
		note("fetched %d: present=%v at=%d metadata=%q", p, ok, o.At, o.Metadata)
	}
	lag, err := adm.Lag(ctx, "tools")
	note("lag: %v", err)
	if gl, ok := lag["tools"]; ok {
		note("lag state %s, total %d", gl.State, gl.Lag.Total())
	}
	listed, err := adm.ListGroups(ctx)
	note("list groups: %v %v", err, listed.Groups())
	described, err := adm.DescribeGroups(ctx, "tools", "never-seen")
	note("describe: %v tools=%s never-seen=%s", err, described["tools"].State, described["never-seen"].State)
	deleted, _ := adm.DeleteGroups(ctx, "tools")
	note("delete group: %s", code(deleted["tools"].Err))
	deleted, _ = adm.DeleteGroups(ctx, "tools")
	note("delete group again: %s", code(deleted["tools"].Err))
	fetched, _ = adm.FetchOffsets(ctx, "tools")
	o, ok := fetched.Lookup("diff", 0)
	note("fetch after delete: present=%v at=%d", ok && o.At >= 0, o.At)

	// Raw requests that clients normally avoid.
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis = 1
	for _, target := range []struct {
		topic  string
		offset int64
	}{{"diff", 1000}, {"nope", 0}} {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = target.topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.FetchOffset, fp.PartitionMaxBytes = target.offset, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
		fetch.Topics = []kmsg.FetchRequestTopic{ft}
		resp, err := fetch.RequestWith(ctx, cl)
		if err != nil {
			note("fetch %s@%d: %v", target.topic, target.offset, err)
			continue
		}
		p := resp.Topics[0].Partitions[0]
		note("fetch %s@%d: %s", target.topic, target.offset, code(kerr.ErrorForCode(p.ErrorCode)))
	}
	return obs
}
