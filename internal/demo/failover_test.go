package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/kafkatest"
	"github.com/factorywire/factorywire/internal/recordbatch"
	"github.com/factorywire/factorywire/topics"
)

// TestKafkaBrokerFailures runs simulated devices → gateways → a
// three-broker Apache Kafka cluster → sink → the MongoDB stand-in, with the
// factory topics created by `broker topics create` at replication factor 3
// and min.insync.replicas 2, and while samples flow:
//   - SIGKILLs the leader of a busy partition three times, restarting it
//     each time once the cluster has noticed;
//   - shuts one broker down in a controlled way and restarts it;
//   - takes two brokers down at once for longer than the gateways'
//     stall_timeout: produce is refused with NOT_ENOUGH_REPLICAS, the
//     gateways' /readyz says forwarding is stalled, their produced counters
//     stand still and their spools grow; then both return and everything
//     drains.
//
// Afterwards every (device, seq) polled is stored exactly once and each
// device's samples first appear at the broker in seq order. It reports the
// time from each leader's death to the topic's samples being acknowledged
// again, and the sink's largest lag during each failure.
func TestKafkaBrokerFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("a few minutes with four JVMs: skipped with -short")
	}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c := kafkatest.Start(t, kafkatest.Options{Nodes: 3, Controllers: 1})
	brokers := strings.Join(c.Brokers(), ",")

	const factories, classes = 2, "press,power-meter"
	admin := buildBrokerCommand(t)
	for i := range factories {
		out, err := exec.Command(admin, "topics", "create", "--brokers", brokers, "--factory", Factory(i), "--classes", classes,
			"--partitions", "3", "--replication-factor", "3", "--min-insync-replicas", "2", "--retention", "1d").CombinedOutput()
		if err != nil {
			t.Fatalf("broker topics create: %v\n%s", err, out)
		}
		t.Logf("broker topics create --factory %s:\n%s", Factory(i), out)
	}

	const probeTopic = "failover-probe"
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	r, err := kadm.NewClient(adm).CreateTopic(context.Background(), 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, probeTopic)
	adm.Close()
	if err == nil {
		err = r.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", probeTopic, err)
	}

	d, err := Start(Config{
		DataDir:           t.TempDir(),
		ClassesDir:        "../../configs/devices",
		Factories:         factories,
		Classes:           strings.Split(classes, ","),
		Devices:           5,
		Interval:          100 * time.Millisecond,
		Kafka:             kafkaclient.Config{Brokers: c.Brokers()},
		ReplicationFactor: 3,
		MinInsyncReplicas: 2,
		GatewayHTTP:       "127.0.0.1:0",
		Logger:            logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w := newWatch(t, d)
	defer w.stop()

	waitStats(t, d, "1,000 samples stored", 2*time.Minute, func(s Stats) bool { return s.Stored >= 1000 })
	if got := w.readyz(); !w.allReady(got) {
		t.Fatalf("/readyz before any failure: %v", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// The busy partition: the one of plant-a.press holding most devices.
	busy, busyPart := Factory(0)+".press", int32(0)
	perPart := map[int32]int{}
	for id, class := range d.Devices[Factory(0)] {
		if class == "press" {
			perPart[topics.Partition([]byte(id), 3)]++
		}
	}
	for p, n := range perPart {
		if n > perPart[busyPart] {
			busyPart = p
		}
	}
	var recoveries []time.Duration

	// A leader killed, three times.
	for kill := 1; kill <= 3; kill++ {
		leader, err := c.Leader(ctx, busy, busyPart)
		if err != nil {
			t.Fatal(err)
		}
		mark := w.mark(busy)
		c.Kill(leader)
		took := w.waitFlowing(ctx, busy, mark)
		recoveries = append(recoveries, took)
		t.Logf("kill %d: node %d (leader of %s/%d) SIGKILLed; samples polled since acknowledged after %v; sink lag at most %d, gateway spools at most %v samples",
			kill, leader, busy, busyPart, took.Round(10*time.Millisecond), w.maxLag(), w.maxSpooled())
		c.Restart(leader)
		waitInSync(t, ctx, c, d.Topics)
		w.resetLag()
	}

	// A controlled shutdown of the leader.
	leader, err := c.Leader(ctx, busy, busyPart)
	if err != nil {
		t.Fatal(err)
	}
	mark := w.mark(busy)
	c.Stop(leader)
	t.Logf("controlled shutdown of node %d took %v; samples polled since acknowledged after %v", leader, time.Since(mark.at).Round(10*time.Millisecond), w.waitFlowing(ctx, busy, mark).Round(10*time.Millisecond))
	c.Restart(leader)
	waitInSync(t, ctx, c, d.Topics)
	w.resetLag()

	// Two brokers down: one in-sync replica left of the two required.
	ids := c.NodeIDs()
	c.Stop(ids[1])
	c.Kill(ids[2])
	downAt := time.Now()
	// A probe: a raw acks=all Produce to the probe topic's partition,
	// sent to its leader as Metadata names it, so that the broker's own
	// answer is seen (a client would retry it). Until the controller has
	// fenced the killed broker and moved its leaderships, the answer is
	// another error.
	// (Produce up to v12, which names topics: v13 names them by id.)
	probe, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.MaxVersions(kversion.V3_9_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	var probed []error
	for probeEnd := time.Now().Add(time.Minute); time.Now().Before(probeEnd) && (len(probed) == 0 || !errors.Is(probed[len(probed)-1], kerr.NotEnoughReplicas)); {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		probed = append(probed, rawProduce(pctx, c, probe, probeTopic))
		pcancel()
		time.Sleep(500 * time.Millisecond)
	}
	refused := probed[len(probed)-1]
	if !errors.Is(refused, kerr.NotEnoughReplicas) {
		t.Fatalf("with two of three brokers down, acks=all produce was not refused with NOT_ENOUGH_REPLICAS: %v", probed)
	}
	t.Logf("two brokers down: a probe produce to %s was refused with NOT_ENOUGH_REPLICAS %v after they went down (%d answers before: %v)", probeTopic, time.Since(downAt).Round(100*time.Millisecond), len(probed)-1, distinct(probed[:len(probed)-1]))
	// The gateways' stall_timeout is 15 s: past it, /readyz must say so.
	settle := downAt.Add(20 * time.Second)
	time.Sleep(time.Until(settle))
	before := d.Stats()
	producedBefore := w.producedAll()
	ready := w.readyz()
	for f, r := range ready {
		if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "forwarding stalled") {
			t.Errorf("/readyz of %s's gateway with two brokers down: %d %q", f, r.code, r.body)
		}
	}
	time.Sleep(5 * time.Second)
	during := d.Stats()
	if during.Polled <= before.Polled {
		t.Errorf("polling stopped while the cluster refused produce: %d then %d", before.Polled, during.Polled)
	}
	if p := w.producedAll(); p != producedBefore {
		t.Errorf("produced_samples_total moved from %v to %v while every produce was refused", producedBefore, p)
	}
	spooled := w.spooled()
	if spooled < float64(during.Polled-during.Produced)/2 {
		t.Errorf("spool gauges say %v samples wait, %d polled and %d produced", spooled, during.Polled, during.Produced)
	}
	t.Logf("two brokers down for %v: /readyz 503 on every gateway (%q), %v samples spooled, sink lag at most %d",
		time.Since(downAt).Round(time.Second), strings.TrimSpace(ready[Factory(0)].body), spooled, w.maxLag())
	mark = w.mark(busy)
	c.Restart(ids[1])
	c.Restart(ids[2])
	t.Logf("both brokers restarted in %v; samples polled before acknowledged after %v", time.Since(mark.at).Round(10*time.Millisecond), w.waitFlowing(ctx, busy, mark).Round(10*time.Millisecond))
	waitStats(t, d, "the spools drained", 3*time.Minute, func(s Stats) bool { return s.Produced >= during.Polled })

	if err := d.StopPolling(); err != nil {
		t.Fatal(err)
	}
	polled := d.Stats().Polled
	waitStats(t, d, "every polled sample stored", 3*time.Minute, func(s Stats) bool { return s.Stored >= polled })
	total := checkStored(t, d, polled, 100)
	dups := checkBrokerOrder(t, d)
	slices.Sort(recoveries)
	t.Logf("%d samples stored once each; per-device order held at the broker (%d records written twice by producer retries); leader death to samples acknowledged: %v",
		total, dups, recoveries)
}

// distinct is the different messages of errs, in order.
func distinct(errs []error) []string {
	var out []string
	for _, err := range errs {
		if msg := fmt.Sprint(err); !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// rawProduce sends one acks=all Produce of one record to partition 0 of
// topic, to its leader as Metadata says now, and returns the broker's
// error code as an error (nil: written).
func rawProduce(ctx context.Context, c *kafkatest.Cluster, cl *kgo.Client, topic string) error {
	leader, err := c.Leader(ctx, topic, 0)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = recordbatch.Encode([]recordbatch.Record{{Value: []byte("probe"), Timestamp: time.Now().UnixMilli()}})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
	if err != nil {
		return fmt.Errorf("node %d: %w", leader, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		return fmt.Errorf("node %d: %w", leader, err)
	}
	return nil
}

// buildBrokerCommand builds cmd/broker into a temporary folder and returns
// its path: the test runs `broker topics create` as an operator would.
func buildBrokerCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "broker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/factorywire/factorywire/cmd/broker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/broker: %v\n%s", err, out)
	}
	return bin
}

// waitInSync waits until every partition of topics has its three replicas
// in sync again, so that the next failure cannot take the last copy.
func waitInSync(t *testing.T, ctx context.Context, c *kafkatest.Cluster, topics []string) {
	t.Helper()
	for _, topic := range topics {
		for p := int32(0); p < 3; p++ {
			for {
				isr, err := c.ISR(ctx, topic, p)
				if err == nil && len(isr) == 3 {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%s/%d never had 3 replicas in sync again: %v %v", topic, p, isr, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
}

// watch samples the demo's figures every 100 ms while the test runs: the
// sink's largest lag since the last reset, and the gateways' metrics and
// readiness on demand.
type watch struct {
	t    *testing.T
	d    *Demo
	http *http.Client
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	lag      int64   // the sink's largest lag since resetLag
	maxSpool float64 // the gateways' largest spool since resetLag
}

func newWatch(t *testing.T, d *Demo) *watch {
	w := &watch{t: t, d: d, http: &http.Client{Timeout: 5 * time.Second}, done: make(chan struct{})}
	w.wg.Go(func() {
		for {
			select {
			case <-w.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			s, spooled := d.Stats(), w.spooled()
			w.mu.Lock()
			w.lag = max(w.lag, s.Lag)
			w.maxSpool = max(w.maxSpool, spooled)
			w.mu.Unlock()
		}
	})
	return w
}

func (w *watch) stop() { close(w.done); w.wg.Wait() }

func (w *watch) maxLag() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lag
}

func (w *watch) maxSpooled() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxSpool
}

func (w *watch) resetLag() {
	w.mu.Lock()
	w.lag, w.maxSpool = 0, 0
	w.mu.Unlock()
}

// produced is the gateways' produced_samples_total of topic.
func (w *watch) produced(topic string) float64 {
	return w.metric("factorywire_gateway_produced_samples_total", topic)
}

// metric is the gateways' counter or gauge name of topic.
func (w *watch) metric(name, topic string) float64 {
	var sum float64
	for _, g := range w.d.gateways {
		mfs, _ := g.Gatherer().Gather() // called by the watch goroutine too: no Fatal
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "topic" && l.GetValue() == topic {
						sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	return sum
}

// producedAll and spooled are the gateways' produced and spooled samples.
func (w *watch) producedAll() float64 { return w.sum("factorywire_gateway_produced_samples_total") }
func (w *watch) spooled() float64     { return w.sum("factorywire_gateway_spool_samples") }

func (w *watch) sum(name string) float64 {
	var total float64
	for _, g := range w.d.gateways {
		mfs, _ := g.Gatherer().Gather() // called by the watch goroutine too: no Fatal
		total += sumMetric(mfs, name)
	}
	return total
}

// flowMark is a moment and what topic's gateways had then: acknowledged
// samples and samples waiting in the spool.
type flowMark struct {
	at               time.Time
	produced, queued float64
}

func (w *watch) mark(topic string) flowMark {
	return flowMark{at: time.Now(), produced: w.produced(topic), queued: w.metric("factorywire_gateway_spool_samples", topic)}
}

// waitFlowing waits until the samples topic's gateways held at m, and one
// more, polled after m, are acknowledged, and returns the time since m.
func (w *watch) waitFlowing(ctx context.Context, topic string, m flowMark) time.Duration {
	w.t.Helper()
	for w.produced(topic) <= m.produced+m.queued {
		if ctx.Err() != nil {
			w.t.Fatalf("%s: the samples spooled at %v were never acknowledged", topic, m.at)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(m.at)
}

type readiness struct {
	code int
	body string
}

// readyz asks every gateway's /readyz.
func (w *watch) readyz() map[string]readiness {
	out := map[string]readiness{}
	for f, addr := range w.d.GatewayAddrs() {
		resp, err := w.http.Get("http://" + addr + "/readyz")
		if err != nil {
			out[f] = readiness{body: err.Error()}
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out[f] = readiness{resp.StatusCode, string(body)}
	}
	return out
}

func (w *watch) allReady(rs map[string]readiness) bool {
	if len(rs) != len(w.d.gateways) {
		return false
	}
	for _, r := range rs {
		if r.code != http.StatusOK {
			return false
		}
	}
	return true
}
