package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/devices/simulator"
)

const testFactory = "plant-t"

// testLogger logs at warn level and above to stderr with -v, else nothing.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// startBroker starts our broker over dir on addr ("127.0.0.1:0" for a new
// port), retrying the bind for a while when restarting on a port just
// closed. The test closes it at the end.
func startBroker(t *testing.T, dir, addr string) *broker.Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Logger = addr, dir, testLogger()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := broker.New(cfg)
		if err == nil {
			t.Cleanup(func() { b.Close() })
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("start the broker on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createTopics creates topic -> partitions on the broker at addr.
func createTopics(t *testing.T, addr string, topics map[string]int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for topic, n := range topics {
		resp, err := adm.CreateTopic(ctx, n, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
}

// testPlant is a simulator with presses and power meters on units 1..n, and
// the gateway config that polls them every interval.
type testPlant struct {
	sim     *simulator.Server
	cfg     Config
	topics  map[string]int32
	devices map[string]string // device id -> class
}

func newTestPlant(t *testing.T, brokerAddr string, interval time.Duration, perClass int) *testPlant {
	t.Helper()
	return newTestPlantSim(t, simulator.Config{}, brokerAddr, interval, perClass)
}

// newTestPlantSim is newTestPlant with a simulator of config simCfg (its
// Logger set here): a test fixes its Clock to keep the values constant.
func newTestPlantSim(t *testing.T, simCfg simulator.Config, brokerAddr string, interval time.Duration, perClass int) *testPlant {
	t.Helper()
	classes, err := devices.LoadDir("../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	simCfg.Logger = testLogger()
	sim, err := simulator.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	p := &testPlant{sim: sim, devices: map[string]string{}, topics: map[string]int32{}}
	cfg := DefaultConfig()
	cfg.Factory = testFactory
	cfg.DataDir = t.TempDir()
	if cfg.ClassesDir, err = filepath.Abs("../configs/devices"); err != nil {
		t.Fatal(err)
	}
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.Kafka.Brokers = []string{brokerAddr}
	cfg.Kafka.Linger = 5 * time.Millisecond
	cfg.Connections = []modbus.ConnConfig{{Name: "line-1", Address: sim.Addr().String()}}
	unit := uint8(1)
	for _, class := range []string{"press", "power-meter"} {
		p.topics[cfg.Topic(class)] = 3
		for i := 0; i < perClass; i++ {
			id := fmt.Sprintf("%s-%02d", class, i)
			if _, err := sim.AddDevice(unit, simulator.Device{Class: classes[class], Seed: uint64(unit)}); err != nil {
				t.Fatal(err)
			}
			u := unit
			cfg.Devices = append(cfg.Devices, DeviceConfig{ID: id, Class: class, Connection: "line-1", Unit: &u, Schedule: modbus.Schedule{Interval: interval}})
			p.devices[id] = class
			unit++
		}
	}
	p.cfg = cfg
	return p
}

// delivered reads every record of the plant's topics from the broker at
// addr (connected with conn's options, if any: TLS, SASL), waiting until
// there are at least want (0: just what is there), and returns each
// device's samples in offset order.
func (p *testPlant) delivered(t *testing.T, addr string, want int, conn ...kgo.Opt) map[string][]devices.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn = append([]kgo.Opt{kgo.SeedBrokers(addr)}, conn...)
	cl, err := kgo.NewClient(conn...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var topics []string
	for topic := range p.topics {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	var ends kadm.ListedOffsets
	for {
		ends, err = adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = ends.Error()
		}
		if errors.Is(err, kerr.UnknownTopicOrPartition) && ctx.Err() == nil {
			// Apache Kafka: the broker has not yet learned of topics
			// the controller just created.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("list end offsets: %v", err)
		}
		total := int64(0)
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total >= int64(want) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the broker holds %d samples, want at least %d", total, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	parts := map[string]map[int32]kgo.Offset{}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if parts[o.Topic] == nil {
				parts[o.Topic] = map[int32]kgo.Offset{}
			}
			parts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
			remaining += int(o.Offset)
		}
	})
	out := map[string][]devices.Sample{}
	if remaining == 0 {
		return out
	}
	cons, err := kgo.NewClient(append(conn, kgo.ConsumePartitions(parts))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	part := kgo.StickyKeyPartitioner(nil)
	for remaining > 0 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume: %d records left to read: %v", remaining, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("consume %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if int64(r.Offset) >= ends[r.Topic][r.Partition].Offset {
				return
			}
			remaining--
			s, err := devices.DecodeSample(r.Value)
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			if string(r.Key) != s.Device || r.Topic != p.cfg.Topic(s.Class) || p.devices[s.Device] != s.Class {
				t.Fatalf("%s/%d@%d: key %q, sample of %s (%s)", r.Topic, r.Partition, r.Offset, r.Key, s.Device, s.Class)
			}
			if want := int32(part.ForTopic(r.Topic).Partition(r, int(p.topics[r.Topic]))); r.Partition != want {
				t.Fatalf("device %s on partition %d, murmur2 says %d", s.Device, r.Partition, want)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != "content-type" || string(r.Headers[0].Value) != devices.ContentType {
				t.Fatalf("%s/%d@%d: headers %v", r.Topic, r.Partition, r.Offset, r.Headers)
			}
			if !r.Timestamp.Equal(s.Time) {
				t.Fatalf("%s/%d@%d: record time %v, sample time %v", r.Topic, r.Partition, r.Offset, r.Timestamp, s.Time)
			}
			out[s.Device] = append(out[s.Device], s)
		})
	}
	return out
}

// checkSeqs checks each device's samples: seq 0, 1, 2… in order, each once
// (dupsOK: a repeat of samples already seen is allowed, and counted), the
// last one at least minLast. It returns the repeats.
func checkSeqs(t *testing.T, got map[string][]devices.Sample, ids map[string]string, minLast map[string]uint64, dupsOK bool) int {
	t.Helper()
	repeats := 0
	for id := range ids {
		next := uint64(0)
		seen := map[uint64]time.Time{}
		for _, s := range got[id] {
			switch {
			case s.Seq == next:
				seen[s.Seq] = s.Time
				next++
			case s.Seq < next && dupsOK:
				// A repeat is the same sample again, never a new
				// sample reusing a seq.
				if !seen[s.Seq].Equal(s.Time) {
					t.Fatalf("device %s: seq %d taken at %v and again at %v", id, s.Seq, seen[s.Seq], s.Time)
				}
				repeats++
			default:
				t.Fatalf("device %s: seq %d where %d was due (%d samples delivered)", id, s.Seq, next, len(got[id]))
			}
		}
		if next == 0 || next-1 < minLast[id] {
			t.Fatalf("device %s: last seq delivered %d, want at least %d", id, int64(next)-1, minLast[id])
		}
	}
	return repeats
}

func testConn(name string) modbus.ConnConfig {
	return modbus.ConnConfig{Name: name, Address: "127.0.0.1:502"}
}

func scheduleEvery(d time.Duration) modbus.Schedule { return modbus.Schedule{Interval: d} }
