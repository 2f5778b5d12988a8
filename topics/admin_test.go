package topics

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// clusters starts our broker and kfake (franz-go's reference broker) on
// 127.0.0.1:0 and takes the package's shared Apache Kafka; each admin test
// runs against the three. Apache Kafka is shared by the tests, so they use
// factories and groups of their own.
func clusters(t *testing.T) map[string]string {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Logger = "127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler)
	ours, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close() })
	ref, err := kfake.NewCluster(kfake.NumBrokers(1)) // kfake listens on 127.0.0.1 ports of its choice
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ref.Close)
	return map[string]string{"ours": ours.Addr().String(), "kfake": ref.ListenAddrs()[0], "kafka": kafkatest.Shared(t).Brokers()[0]}
}

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestAdminFactoryLifecycle(t *testing.T) {
	for kind, addr := range clusters(t) {
		t.Run(kind, func(t *testing.T) {
			a := NewAdmin(client(t, addr))
			spec := FactorySpec{Factory: "plant-a", Classes: []string{"press", "power-meter"}, Partitions: 3, Retention: 7 * 24 * time.Hour}
			changes, err := a.Ensure(ctx(t), spec)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"plant-a.press": "created (3 partitions)", "plant-a.press.dlq": "created (1 partitions)",
				"plant-a.power-meter": "created (3 partitions)", "plant-a.power-meter.dlq": "created (1 partitions)",
			}
			checkChanges(t, changes, want)

			// Idempotent: nothing to do the second time.
			changes, err = a.Ensure(ctx(t), spec)
			if err != nil {
				t.Fatal(err)
			}
			for topic := range want {
				want[topic] = "unchanged"
			}
			checkChanges(t, changes, want)

			// A new retention is applied; more partitions are only reported.
			spec.Retention, spec.Partitions = 14*24*time.Hour, 6
			changes, err = a.Ensure(ctx(t), spec)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range changes {
				if !strings.Contains(c.Action, "retention changed") {
					t.Errorf("%s: %q, want the retention changed", c.Topic, c.Action)
				}
				if !strings.HasSuffix(c.Topic, ".dlq") && !strings.Contains(c.Action, "has 3 partitions, 6 asked") {
					t.Errorf("%s: %q, want the partition difference reported", c.Topic, c.Action)
				}
			}

			// Records and a group's lag show in List.
			p := client(t, addr, kgo.DefaultProduceTopic("plant-a.press"))
			for i := 0; i < 30; i++ {
				if err := p.ProduceSync(ctx(t), &kgo.Record{Key: []byte(fmt.Sprintf("press-%02d", i%5)), Value: []byte("{}")}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			adm := kadm.NewClient(client(t, addr))
			var commit kadm.Offsets
			for part := int32(0); part < 3; part++ {
				commit.Add(kadm.Offset{Topic: "plant-a.press", Partition: part, At: 0, LeaderEpoch: -1})
			}
			if r, err := adm.CommitOffsets(ctx(t), "sink", commit); err != nil || r.Error() != nil {
				t.Fatalf("commit: %v %v", err, r.Error())
			}
			infos, err := a.List(ctx(t), "", "plant-a")
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != 4 {
				t.Fatalf("List: %d topics, want 4: %+v", len(infos), infos)
			}
			press := infos[2] // sorted: power-meter, power-meter.dlq, press, press.dlq
			if press.Name.String() != "plant-a.press" || press.Partitions != 3 || press.Records != 30 || press.Retention != "1209600000" || press.Lag["sink"] != 30 {
				t.Fatalf("plant-a.press listed as %+v", press)
			}
			// 30 records of at least 10 bytes each hold more than 300
			// bytes; the topics without records, none.
			for _, info := range infos {
				if info.BytesErr != nil || (info.Name == press.Name) != (info.Bytes > 300) || (info.Name != press.Name && info.Bytes != 0) {
					t.Errorf("%s: %d bytes (%v), want more than 300 for plant-a.press and 0 for the others", info.Name, info.Bytes, info.BytesErr)
				}
			}
			if other, err := a.List(ctx(t), "", "plant-b"); err != nil || len(other) != 0 {
				t.Fatalf("List(plant-b) = %v, %v", other, err)
			}

			if err := a.AddPartitions(ctx(t), "plant-a.press", 6); err != nil {
				t.Fatal(err)
			}
			deleted, err := a.DeleteFactory(ctx(t), "", "plant-a")
			if err != nil || len(deleted) != 4 {
				t.Fatalf("DeleteFactory = %v, %v", deleted, err)
			}
			// kfake forgets deleted topics at once; Kafka and ours too.
			if infos, err := a.List(ctx(t), "", "plant-a"); err != nil || len(infos) != 0 {
				t.Fatalf("after DeleteFactory List = %+v, %v", infos, err)
			}
		})
	}
}

// TestListBytes checks List's sizes on our broker against the partitions'
// segment files, and that a cluster refusing DescribeLogDirs (kfake
// answering CLUSTER_AUTHORIZATION_FAILED, or no dirs as Kafka answers an
// unauthorized v1 or v2 request) leaves them unknown with the cause, and
// the rest of the listing intact.
func TestListBytes(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Logger = "127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler)
	ours, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close() })
	fill := func(t *testing.T, addr string) *Admin {
		a := NewAdmin(client(t, addr))
		if _, err := a.Ensure(ctx(t), FactorySpec{Factory: "plant-s", Classes: []string{"press"}, Partitions: 2}); err != nil {
			t.Fatal(err)
		}
		p := client(t, addr, kgo.DefaultProduceTopic("plant-s.press"))
		for i := range 20 {
			if err := p.ProduceSync(ctx(t), &kgo.Record{Key: []byte(fmt.Sprintf("press-%02d", i%4)), Value: []byte("{}")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	t.Run("ours", func(t *testing.T) {
		infos, err := fill(t, ours.Addr().String()).List(ctx(t), "", "plant-s")
		if err != nil || len(infos) != 2 {
			t.Fatalf("List = %+v, %v", infos, err)
		}
		var onDisk int64
		for p := range 2 {
			files, _ := filepath.Glob(filepath.Join(cfg.DataDir, fmt.Sprintf("plant-s.press-%d", p), "*.log"))
			for _, f := range files {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				onDisk += st.Size()
			}
		}
		if infos[0].Bytes != onDisk || infos[0].BytesErr != nil || onDisk == 0 {
			t.Fatalf("plant-s.press: %d bytes (%v), want %d: its .log files", infos[0].Bytes, infos[0].BytesErr, onDisk)
		}
		if infos[1].Bytes != 0 || infos[1].BytesErr != nil {
			t.Fatalf("plant-s.press.dlq: %d bytes (%v), want 0", infos[1].Bytes, infos[1].BytesErr)
		}
	})
	for _, tc := range []struct {
		name string
		code int16 // the response's error code
		want string
	}{
		{"refused", kerr.ClusterAuthorizationFailed.Code, "CLUSTER_AUTHORIZATION_FAILED"},
		{"no dirs", 0, "reported no size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			ref.ControlKey(int16(kmsg.DescribeLogDirs), func(req kmsg.Request) (kmsg.Response, error, bool) {
				ref.KeepControl()
				resp := req.(*kmsg.DescribeLogDirsRequest).ResponseKind().(*kmsg.DescribeLogDirsResponse)
				resp.ErrorCode = tc.code
				return resp, nil, true
			})
			infos, err := fill(t, ref.ListenAddrs()[0]).List(ctx(t), "", "plant-s")
			if err != nil || len(infos) != 2 {
				t.Fatalf("List = %+v, %v", infos, err)
			}
			for _, info := range infos {
				if info.Bytes != -1 || info.BytesErr == nil || !strings.Contains(info.BytesErr.Error(), tc.want) {
					t.Errorf("%s: %d bytes (%v), want -1 and an error saying %q", info.Name, info.Bytes, info.BytesErr, tc.want)
				}
			}
			if infos[0].Records != 20 {
				t.Errorf("plant-s.press: %d records, want 20 whatever the sizes", infos[0].Records)
			}
		})
	}
}

func checkChanges(t *testing.T, got []Change, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("changes %+v, want %v", got, want)
	}
	for _, c := range got {
		if want[c.Topic] != c.Action {
			t.Errorf("%s: %q, want %q", c.Topic, c.Action, want[c.Topic])
		}
	}
}

func TestAdminGroupsAndReset(t *testing.T) {
	for kind, addr := range clusters(t) {
		t.Run(kind, func(t *testing.T) {
			a := NewAdmin(client(t, addr))
			if _, err := a.Ensure(ctx(t), FactorySpec{Factory: "plant-b", Classes: []string{"press"}, Partitions: 2, NoDLQ: true}); err != nil {
				t.Fatal(err)
			}
			const topic = "plant-b.press"
			p := client(t, addr, kgo.DefaultProduceTopic(topic))
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			for i := 0; i < 20; i++ {
				r := &kgo.Record{Key: []byte(fmt.Sprintf("press-%02d", i%4)), Value: []byte("{}"), Timestamp: base.Add(time.Duration(i) * time.Minute)}
				if err := p.ProduceSync(ctx(t), r).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			// A consumer group reads everything and commits, then leaves.
			c := client(t, addr, kgo.ConsumerGroup("readers"), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			for n := 0; n < 20; {
				fs := c.PollFetches(ctx(t))
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				n += fs.NumRecords()
			}
			if err := c.CommitUncommittedOffsets(ctx(t)); err != nil {
				t.Fatal(err)
			}
			// While it is a member, a reset is refused.
			if _, err := a.ResetOffsets(ctx(t), "readers", []string{topic}, ResetTo{Earliest: true}, false); err == nil || !strings.Contains(err.Error(), "active members") {
				t.Fatalf("reset of an active group: %v", err)
			}
			c.Close()

			lagOf := func() int64 { // of "readers", among the groups of other tests on Apache Kafka
				t.Helper()
				groups, err := a.Groups(ctx(t))
				if err != nil {
					t.Fatal(err)
				}
				for _, g := range groups {
					if g.Group == "readers" {
						return g.Lag
					}
				}
				t.Fatalf("Groups = %+v lacks readers", groups)
				return 0
			}
			if lag := lagOf(); lag != 0 {
				t.Fatalf("readers lag %d after consuming everything", lag)
			}
			_, parts, err := a.Lag(ctx(t), "readers")
			if err != nil || len(parts) != 2 {
				t.Fatalf("Lag = %+v, %v", parts, err)
			}
			ends := map[int32]int64{}
			for _, pl := range parts {
				if pl.Committed != pl.End || pl.Lag != 0 {
					t.Fatalf("after consuming everything: %+v", pl)
				}
				ends[pl.Partition] = pl.End
			}

			// Dry run to earliest: a plan, nothing committed.
			plan, err := a.ResetOffsets(ctx(t), "readers", []string{topic}, ResetTo{Earliest: true}, false)
			if err != nil || len(plan) != 2 || plan[0].To != 0 || plan[0].From != ends[0] {
				t.Fatalf("dry run = %+v, %v", plan, err)
			}
			if lag := lagOf(); lag != 0 {
				t.Fatalf("a dry run moved the offsets: lag %d", lag)
			}
			// Executed: the lag is everything.
			if _, err := a.ResetOffsets(ctx(t), "readers", []string{topic}, ResetTo{Earliest: true}, true); err != nil {
				t.Fatal(err)
			}
			if lag := lagOf(); lag != 20 {
				t.Fatalf("after reset to earliest: lag %d, want 20", lag)
			}
			// To a time: the records from then on are to be read again.
			plan, err = a.ResetOffsets(ctx(t), "readers", []string{topic}, ResetTo{Time: base.Add(10 * time.Minute)}, true)
			if err != nil {
				t.Fatal(err)
			}
			var remaining int64
			for _, c := range plan {
				remaining += ends[c.Partition] - c.To
			}
			if remaining != 10 {
				t.Fatalf("reset to a time leaves %d records to read, want 10: %+v", remaining, plan)
			}
			// To an offset beyond the end: clamped to the end.
			far := int64(1_000_000)
			plan, err = a.ResetOffsets(ctx(t), "readers", []string{topic}, ResetTo{Offset: &far}, true)
			if err != nil || plan[0].To != ends[0] || plan[1].To != ends[1] {
				t.Fatalf("reset to offset %d = %+v, %v", far, plan, err)
			}
			if _, err := a.ResetOffsets(ctx(t), "readers", []string{topic}, ResetTo{Earliest: true, Latest: true}, false); err == nil {
				t.Fatal("a reset with two targets was accepted")
			}
		})
	}
}

// TestAdminReplication creates a factory's topics with a replication
// factor and min.insync.replicas (single-node clusters: 1 and 1), reads
// them back with List, and checks what Ensure reports for a factor it
// cannot change. Our single-node broker has no min.insync.replicas and
// says so.
func TestAdminReplication(t *testing.T) {
	for kind, addr := range clusters(t) {
		t.Run(kind, func(t *testing.T) {
			a := NewAdmin(client(t, addr))
			spec := FactorySpec{Factory: "plant-r", Classes: []string{"press"}, Partitions: 2, ReplicationFactor: 1, MinInsyncReplicas: 1}
			if _, err := a.Ensure(ctx(t), FactorySpec{Factory: "plant-r", Classes: []string{"press"}, ReplicationFactor: 1, MinInsyncReplicas: 2}); err == nil || !strings.Contains(err.Error(), "more than the replication factor") {
				t.Fatalf("min.insync.replicas above the replication factor: %v", err)
			}
			changes, err := a.Ensure(ctx(t), spec)
			if kind == "ours" {
				if err == nil || !strings.Contains(err.Error(), "min.insync.replicas") {
					t.Fatalf("our broker took min.insync.replicas: %+v, %v", changes, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkChanges(t, changes, map[string]string{"plant-r.press": "created (2 partitions)", "plant-r.press.dlq": "created (1 partitions)"})
			infos, err := a.List(ctx(t), "", "plant-r")
			if err != nil || len(infos) != 2 {
				t.Fatalf("List = %+v, %v", infos, err)
			}
			for _, info := range infos {
				if info.Replicas != 1 || info.MinInsyncReplicas != "1" {
					t.Errorf("%s: %d replicas, min.insync.replicas %q; want 1 and 1", info.Name, info.Replicas, info.MinInsyncReplicas)
				}
			}
			spec.ReplicationFactor, spec.MinInsyncReplicas = 3, 2
			changes, err = a.Ensure(ctx(t), spec)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range changes {
				if !strings.Contains(c.Action, "has 1 replicas, 3 asked: kept") || !strings.Contains(c.Action, "min.insync.replicas changed") {
					t.Errorf("%s: %q, want the replication factor reported and min.insync.replicas changed", c.Topic, c.Action)
				}
			}
		})
	}
}
