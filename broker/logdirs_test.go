package broker

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDescribeLogDirs asks with kadm (all partitions) and with raw
// requests at every version (some partitions, unknown ones included): one
// dir, the data dir's absolute path, each partition's size equal to its
// .log files, disk sizes from v4.
func TestDescribeLogDirs(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr := b.Addr().String()
	createTopic(t, addr, "a", 2, nil)
	createTopic(t, addr, "b", 1, nil)
	cl := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "a", Partition: int32(i % 2), Value: []byte("value")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	size := func(topic string, p int) int64 {
		return logFileBytes(t, filepath.Join(dir, fmt.Sprintf("%s-%d", topic, p)))
	}

	all, err := kadm.NewClient(cl).DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []kadm.DescribedLogDir
	all.Each(func(d kadm.DescribedLogDir) { dirs = append(dirs, d) })
	if len(dirs) != 1 || dirs[0].Dir != abs || dirs[0].Err != nil {
		t.Fatalf("log dirs %+v, want one: %s", dirs, abs)
	}
	d := dirs[0]
	if d.TotalBytes <= 0 || d.UsableBytes < 0 || d.UsableBytes > d.TotalBytes {
		t.Errorf("total %d, usable %d bytes: want 0 <= usable <= total, total > 0", d.TotalBytes, d.UsableBytes)
	}
	want := map[string]map[int32]int64{"a": {0: size("a", 0), 1: size("a", 1)}, "b": {0: 0}}
	if want["a"][0] == 0 || want["a"][1] == 0 {
		t.Fatalf("nothing on disk: %v", want)
	}
	for topic, ps := range want {
		for p, bytes := range ps {
			got, ok := d.Topics.Lookup(topic, p)
			if !ok || got.Size != bytes || got.OffsetLag != 0 || got.IsFuture {
				t.Errorf("%s-%d: %+v (found %v), want size %d, lag 0, not future", topic, p, got, ok, bytes)
			}
		}
	}
	if n := len(d.Topics["a"]) + len(d.Topics["b"]); n != 3 || len(d.Topics) != 2 {
		t.Errorf("described %v, want a-0, a-1, b-0", d.Topics)
	}

	c := dialRaw(t, addr)
	for v := int16(1); v <= 4; v++ {
		req := kmsg.NewPtrDescribeLogDirsRequest()
		req.Version = v
		for _, rt := range []struct {
			topic string
			ps    []int32
		}{{"a", []int32{1, 9}}, {"missing", []int32{0}}, {"b", []int32{}}} {
			rq := kmsg.NewDescribeLogDirsRequestTopic()
			rq.Topic, rq.Partitions = rt.topic, rt.ps
			req.Topics = append(req.Topics, rq)
		}
		resp := c.roundTrip(req).(*kmsg.DescribeLogDirsResponse)
		if resp.ErrorCode != 0 || len(resp.Dirs) != 1 || resp.Dirs[0].Dir != abs || resp.Dirs[0].ErrorCode != 0 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		got := resp.Dirs[0]
		if len(got.Topics) != 1 || got.Topics[0].Topic != "a" || len(got.Topics[0].Partitions) != 1 ||
			got.Topics[0].Partitions[0].Partition != 1 || got.Topics[0].Partitions[0].Size != size("a", 1) {
			t.Errorf("v%d: topics %+v, want only a-1 of %d bytes", v, got.Topics, size("a", 1))
		}
		if hasDisk := got.TotalBytes > 0; hasDisk != (v >= 4) {
			t.Errorf("v%d: total bytes %d: disk sizes belong to v4+", v, got.TotalBytes)
		}
	}
}
