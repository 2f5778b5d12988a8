package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { Main(m) }

func newClient(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestShared produces to and consumes from the shared single-node cluster,
// twice through Shared, which must start it once.
func TestShared(t *testing.T) {
	c := Shared(t)
	if again := Shared(t); again != c {
		t.Fatal("Shared started a second cluster")
	}
	if got := c.NodeIDs(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("node ids %v, want [1]", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.Brokers()))
	if r, err := adm.CreateTopic(ctx, 2, 1, nil, "shared"); err != nil || r.Err != nil {
		t.Fatalf("create topic: %v %v", err, r.Err)
	}
	cl := newClient(t, c.Brokers(), kgo.ConsumeTopics("shared"))
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "shared", Key: []byte(fmt.Sprint(i % 3)), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	got := 0
	for got < 10 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 10 records: %v", got, err)
		}
		got += fs.NumRecords()
	}
	if got != 10 {
		t.Fatalf("consumed %d records, want 10", got)
	}
}

// TestThreeNodes starts three brokers beside a controller, kills the
// leader of a partition replicated three times, checks that another node
// leads it and that acks=all produce continues, restarts the node, stops
// one with a controlled shutdown and kills another, and checks that
// produce is refused with NOT_ENOUGH_REPLICAS until they are back.
func TestThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three JVMs")
	}
	c := Start(t, Options{Nodes: 3, Controllers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := newClient(t, c.Brokers(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "replicated"); err != nil || r.Err != nil {
		t.Fatalf("create topic: %v %v", err, r.Err)
	}
	produce := func(what string) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "replicated", Value: []byte(what)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", what, err)
		}
	}
	produce("before")

	leader, err := c.Leader(ctx, "replicated", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	if c.Running(leader) {
		t.Fatalf("node %d runs after Kill", leader)
	}
	waitLeader(t, ctx, c, func(l int32) bool { return l != leader })
	produce("after kill")
	c.Restart(leader)
	if !c.Running(leader) {
		t.Fatalf("node %d does not run after Restart", leader)
	}

	// Two nodes down: acks=all with min.insync.replicas 2 must refuse.
	others := []int32{}
	for _, id := range c.NodeIDs() {
		if id != leader {
			others = append(others, id)
		}
	}
	c.Stop(others[0])
	produce("one node stopped")
	c.Kill(others[1])
	// Once the controller fences the killed node, the leader refuses
	// acks=all produce: fewer in-sync replicas than min.insync.replicas.
	pcl := newClient(t, c.Brokers(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(1), kgo.RequestTimeoutOverhead(2*time.Second))
	var errs []string
	for {
		pctx, pcancel := context.WithTimeout(ctx, 8*time.Second)
		err = pcl.ProduceSync(pctx, &kgo.Record{Topic: "replicated", Value: []byte("two down")}).FirstErr()
		pcancel()
		if errors.Is(err, kerr.NotEnoughReplicas) {
			break
		}
		errs = append(errs, fmt.Sprint(err))
		if ctx.Err() != nil || len(errs) > 10 {
			t.Fatalf("acks=all produce with one live replica of three never failed with NOT_ENOUGH_REPLICAS: %v", errs)
		}
	}
	t.Logf("with two nodes down, produce failed first with %v, then NOT_ENOUGH_REPLICAS", errs)
	c.Restart(others[0])
	c.Restart(others[1])
	produce("all back")

	res, err := adm.ListEndOffsets(ctx, "replicated")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := res.Lookup("replicated", 0); o.Offset < 4 {
		t.Fatalf("end offset %d, want at least the 4 acknowledged records", o.Offset)
	}
}

func waitLeader(t *testing.T, ctx context.Context, c *Cluster, ok func(int32) bool) {
	t.Helper()
	for {
		l, err := c.Leader(ctx, "replicated", 0)
		if err == nil && ok(l) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no new leader: %v (last %d)", err, l)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
