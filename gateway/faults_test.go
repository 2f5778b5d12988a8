package gateway

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// unusedAddr is a loopback address nobody listens on: a port just released.
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestGatewayBacklogGaugesWhileUnreachable: with no broker at the
// configured address (nobody ever listened there, or our broker stopped
// after taking samples), polling goes on into the spool, and the spool's
// sample and age gauges, read at scrape time, keep growing between two
// scrapes.
func TestGatewayBacklogGaugesWhileUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// start returns the broker address and, for a broker that
		// runs at first, a stop called once samples were delivered.
		start func(t *testing.T) (addr string, stop func() error)
	}{
		{"nobody listens", func(t *testing.T) (string, func() error) { return unusedAddr(t), nil }},
		{"broker stopped", func(t *testing.T) (string, func() error) {
			b := startBroker(t, t.TempDir(), "127.0.0.1:0")
			return b.Addr().String(), b.Close
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, stopBroker := tc.start(t)
			plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
			if stopBroker != nil {
				createTopics(t, addr, plant.topics)
			}
			g, stop := runGateway(t, plant.cfg)
			defer stop()
			if stopBroker != nil {
				plant.delivered(t, addr, 6)
				if err := stopBroker(); err != nil {
					t.Fatal(err)
				}
			}
			topic := testFactory + ".press"
			waitFor(t, "samples spooled", 20*time.Second, func() bool { return g.spool.backlog(true) >= 3 })
			age1, n1 := backlogOf(t, g, topic)
			waitFor(t, "the backlog gauges to grow while the broker is unreachable", 20*time.Second, func() bool {
				age2, n2 := backlogOf(t, g, topic)
				return n2 > n1 && age2 > age1
			})
		})
	}
}

// TestGatewayReadyzProduceFailing: our broker is up and answers metadata,
// but the gateway's topics do not exist and the broker does not create
// them. Every produce fails; /readyz must answer 503 naming the topic and
// the error once that lasted kafka.stall_timeout, and 200 again once the
// topics exist and the spool is forwarded.
func TestGatewayReadyzProduceFailing(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0") // auto_create_topics off by default
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	plant.cfg.Kafka.StallTimeout = 300 * time.Millisecond
	g, stop := runGateway(t, plant.cfg)
	defer stop()
	readyz := func() (int, string) { return get(t, "http://"+g.Addr().String()+"/readyz") }
	var why string
	waitFor(t, "/readyz to report the failing produces", 30*time.Second, func() bool {
		code, body := readyz()
		why = body
		return code == http.StatusServiceUnavailable && strings.Contains(body, testFactory+".press") && strings.Contains(body, "UNKNOWN_TOPIC_OR_PARTITION")
	})
	t.Logf("/readyz with the topics missing: %s", strings.TrimSpace(why))

	createTopics(t, addr, plant.topics)
	waitFor(t, "/readyz to be ready once the topics exist", 60*time.Second, func() bool { code, _ := readyz(); return code == http.StatusOK })
	stop()
	last, total := polled(g)
	checkSeqs(t, plant.delivered(t, addr, total), plant.devices, last, true)
}

// TestGatewayDeliveryTimeout: the broker (kfake, through its request
// control) answers every produce with NOT_ENOUGH_REPLICAS. Past
// kafka.delivery_timeout the producer gives the records up: the failure is
// logged (kgo's record timeout) and counted in produce_errors_total, and the
// spool keeps the samples. Once the broker accepts again the forwarder,
// retrying from its checkpoint, delivers everything without a restart,
// each device's seq in order.
func TestGatewayDeliveryTimeout(t *testing.T) {
	c, refuse := refusingCluster(t)
	addr := c.ListenAddrs()[0]
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	plant.cfg.Kafka.DeliveryTimeout = time.Second
	createTopics(t, addr, plant.topics)
	var logs lockedBuffer
	g, stop := runGatewayLogged(t, plant.cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer stop()

	topic := testFactory + ".press"
	errorsMetric := regexp.MustCompile(`(?m)^factorywire_gateway_produce_errors_total\{topic="` + regexp.QuoteMeta(topic) + `"\} (\d+)$`)
	waitFor(t, "produce errors counted after the delivery timeout", 20*time.Second, func() bool {
		m := errorsMetric.FindStringSubmatch(scrape(t, g))
		return m != nil && m[1] != "0"
	})
	waitFor(t, "the record timeout in the log", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "kafka.delivery_timeout")
	})
	if g.spool.backlog(true) == 0 {
		t.Fatal("the spool holds no sample after the produces timed out")
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "kafka.delivery_timeout") {
			t.Logf("log: %s", line)
			break
		}
	}

	refuse.Store(false)
	waitFor(t, "the spool to drain", 30*time.Second, func() bool { return g.spool.backlog(true) == 0 })
	stop()
	last, total := polled(g)
	checkSeqs(t, plant.delivered(t, addr, total), plant.devices, last, true)
}

// TestGatewayCorruptSpoolSegment: a gateway spools samples while the
// broker is unreachable and stops; a byte of a batch in the middle of a
// spool segment then changes on disk. Started again with a broker, the
// gateway moves the damaged range aside (a quarantine file beside the
// segment), logs and counts it naming file and byte, polls on, and
// forwards every other sample: each device's seq increases, and exactly
// the quarantined samples are missing.
func TestGatewayCorruptSpoolSegment(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, unusedAddr(t), 100*time.Millisecond, 1)
	createTopics(t, addr, plant.topics)
	g, stop := runGateway(t, plant.cfg)
	waitFor(t, "samples spooled", 20*time.Second, func() bool { return g.spool.backlog(true) >= 30 })
	stop()

	topic := testFactory + ".press"
	file, pos := corruptMiddleBatch(t, plant.cfg.DataDir, topic)

	var logs lockedBuffer
	plant.cfg.Kafka.Brokers = []string{addr}
	g, stop = runGatewayLogged(t, plant.cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	at := fmt.Sprintf("file=%s byte=%d", file, pos)
	if !strings.Contains(logs.String(), at) {
		t.Fatalf("the log does not name %s:\n%s", at, logs.String())
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, at) {
			t.Logf("log: %s", line)
		}
	}
	q := g.spool.Quarantined()
	if len(q) != 1 || q[0].Samples == 0 {
		t.Fatalf("quarantined: %+v, want one range with samples", q)
	}
	if _, err := os.Stat(q[0].Quarantine); err != nil {
		t.Errorf("quarantine file: %v", err)
	}
	metric := fmt.Sprintf(`factorywire_gateway_spool_quarantined_samples_total{byte="%d",file="%s",topic="%s"} %d`, pos, file, topic, q[0].Samples)
	if m := scrape(t, g); !strings.Contains(m, metric) {
		t.Errorf("/metrics lacks %s", metric)
	}
	before := nextSeqs(g)
	waitFor(t, "polling to go on", 20*time.Second, func() bool {
		now := nextSeqs(g)
		return now["press-00"] > before["press-00"]+5
	})
	stop()
	last, total := polled(g)
	got := plant.delivered(t, addr, total-int(q[0].Samples))
	n := 0
	for id := range plant.devices {
		prev := int64(-1)
		for _, s := range got[id] {
			if int64(s.Seq) <= prev {
				t.Fatalf("device %s: seq %d after %d", id, s.Seq, prev)
			}
			prev = int64(s.Seq)
			n++
		}
		if uint64(prev) != last[id] {
			t.Errorf("device %s: last seq delivered %d, polled %d", id, prev, last[id])
		}
	}
	if n != total-int(q[0].Samples) {
		t.Errorf("%d samples delivered, want %d polled minus %d quarantined", n, total, q[0].Samples)
	}
}

// corruptMiddleBatch flips a record byte of the middle batch of topic's
// first spool segment under dataDir, in place (the file keeps its inode
// and length, as under bit rot), so that the batch's CRC no longer
// matches, and returns the segment file and the batch's byte position in
// it.
func corruptMiddleBatch(t *testing.T, dataDir, topic string) (file string, pos int64) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dataDir, "spool", topic, "*.log"))
	if len(segs) == 0 {
		t.Fatal("no spool segment")
	}
	file = segs[0]
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var positions []int64
	for pos := 0; pos+12 <= len(raw); pos += 12 + int(binary.BigEndian.Uint32(raw[pos+8:])) {
		if pos+12+int(binary.BigEndian.Uint32(raw[pos+8:])) > len(raw) {
			break // a batch still being written
		}
		positions = append(positions, int64(pos))
	}
	if len(positions) < 3 {
		t.Fatalf("%s holds %d batches, want at least 3", file, len(positions))
	}
	pos = positions[len(positions)/2]
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at := pos + 61 + 2 // a record byte: the CRC no longer matches
	if _, err := f.WriteAt([]byte{raw[at] ^ 0x10}, at); err != nil {
		t.Fatal(err)
	}
	return file, pos
}

// TestGatewayCorruptSpoolSegmentWhileRunning: the broker refuses every
// produce, so samples pile up in the spool; a byte of a batch in the middle
// of a spool segment changes on disk while the gateway runs. Once the
// broker accepts, the forwarder delivers the batches before the damage,
// reaches it and, without a restart, moves the damaged range aside (logged
// with file and byte, counted) and forwards every other sample; polling
// never stops.
func TestGatewayCorruptSpoolSegmentWhileRunning(t *testing.T) {
	c, refuse := refusingCluster(t)
	addr := c.ListenAddrs()[0]
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	plant.cfg.Kafka.DeliveryTimeout = time.Second // each refused produce gives up soon, and the forwarder reads again
	createTopics(t, addr, plant.topics)
	var logs lockedBuffer
	g, stop := runGatewayLogged(t, plant.cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer stop()
	waitFor(t, "samples spooled", 20*time.Second, func() bool { return g.spool.backlog(true) >= 40 })

	topic := testFactory + ".press"
	file, pos := corruptMiddleBatch(t, plant.cfg.DataDir, topic)
	refuse.Store(false) // the forwarder reaches the damage once what comes before is delivered
	waitFor(t, "the damaged range moved aside while running", 30*time.Second, func() bool { return len(g.spool.Quarantined()) > 0 })
	q := g.spool.Quarantined()
	if len(q) != 1 || q[0].Samples == 0 || q[0].Byte != pos || q[0].Segment != file {
		t.Fatalf("quarantined: %+v, want one range with samples at %s byte %d", q, file, pos)
	}
	if _, err := os.Stat(q[0].Quarantine); err != nil {
		t.Errorf("quarantine file: %v", err)
	}
	at := fmt.Sprintf("file=%s byte=%d", file, pos)
	if !strings.Contains(logs.String(), at) {
		t.Fatalf("the log does not name %s:\n%s", at, logs.String())
	}
	metric := fmt.Sprintf(`factorywire_gateway_spool_quarantined_samples_total{byte="%d",file="%s",topic="%s"} %d`, pos, file, topic, q[0].Samples)
	if m := scrape(t, g); !strings.Contains(m, metric) {
		t.Errorf("/metrics lacks %s", metric)
	}

	before := nextSeqs(g)
	waitFor(t, "polling to go on", 20*time.Second, func() bool { return nextSeqs(g)["press-00"] > before["press-00"]+5 })
	waitFor(t, "the spool to drain", 30*time.Second, func() bool { return g.spool.backlog(true) == 0 })
	stop()
	last, total := polled(g)
	got := plant.delivered(t, addr, total-int(q[0].Samples))
	n := 0
	for id := range plant.devices {
		seen := map[uint64]bool{}
		prev := int64(-1)
		for _, s := range got[id] {
			if int64(s.Seq) < prev {
				t.Fatalf("device %s: seq %d after %d", id, s.Seq, prev)
			}
			prev = int64(s.Seq)
			seen[s.Seq] = true
		}
		if uint64(prev) != last[id] {
			t.Errorf("device %s: last seq delivered %d, polled %d", id, prev, last[id])
		}
		n += len(seen)
	}
	if n != total-int(q[0].Samples) {
		t.Errorf("%d distinct samples delivered, want %d polled minus %d quarantined", n, total, q[0].Samples)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, at) {
			t.Logf("log: %s", line)
		}
	}
}

// fullFS is the operating system's file system whose writes and fsyncs in
// one spool topic's directory fail with ENOSPC while full is set.
type fullFS struct {
	commitlog.FS
	dir  string // base name of the topic directory
	full atomic.Bool
}

func (f *fullFS) check(op, name string) error {
	if f.full.Load() && filepath.Base(filepath.Dir(name)) == f.dir {
		return &fs.PathError{Op: op, Path: name, Err: syscall.ENOSPC}
	}
	return nil
}

func (f *fullFS) OpenFile(name string, flag int, perm os.FileMode) (commitlog.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: file, fs: f, name: name}, nil
}

type fullFile struct {
	commitlog.File
	fs   *fullFS
	name string
}

func (f *fullFile) Write(b []byte) (int, error) {
	if err := f.fs.check("write", f.name); err != nil {
		return 0, err
	}
	return f.File.Write(b)
}

func (f *fullFile) Sync() error {
	if err := f.fs.check("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

// TestGatewayDiskFull: the disk under one topic's spool fills up (every
// write and fsync fails with ENOSPC). The gateway keeps running and
// applies spool.when_full: drop_oldest drops the samples it cannot store,
// counted in spool_dropped_samples_total; pause_polling holds polling,
// counted in spool_full_waits_total, and loses nothing. The other topic
// flows meanwhile; once the disk has room again the topic's samples flow
// again, each device's seq in order.
func TestGatewayDiskFull(t *testing.T) {
	for _, whenFull := range []string{DropOldest, PausePolling} {
		t.Run(whenFull, func(t *testing.T) {
			b := startBroker(t, t.TempDir(), "127.0.0.1:0")
			addr := b.Addr().String()
			plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
			createTopics(t, addr, plant.topics)
			topic := testFactory + ".press"
			disk := &fullFS{FS: commitlog.OSFS, dir: topic}
			plant.cfg.Spool.WhenFull = whenFull
			plant.cfg.Spool.FS = disk
			g, stop := runGateway(t, plant.cfg)
			defer stop()
			plant.delivered(t, addr, 6)

			disk.full.Store(true)
			metric := regexp.MustCompile(`(?m)^factorywire_gateway_spool_dropped_samples_total\{topic="` + regexp.QuoteMeta(topic) + `"\} (\d+)$`)
			if whenFull == PausePolling {
				metric = regexp.MustCompile(`(?m)^factorywire_gateway_spool_full_waits_total (\d+)$`)
			}
			waitFor(t, "when_full to apply to the full disk", 20*time.Second, func() bool {
				m := metric.FindStringSubmatch(scrape(t, g))
				return m != nil && m[1] != "0" && m[1] != "1"
			})
			meter := nextSeqs(g)["power-meter-00"]
			if whenFull == DropOldest {
				waitFor(t, "polling to go on", 20*time.Second, func() bool { return nextSeqs(g)["press-00"] > meter })
			}
			disk.full.Store(false)
			press := nextSeqs(g)["press-00"]
			waitFor(t, "the topic's samples to be stored again", 30*time.Second, func() bool { return nextSeqs(g)["press-00"] > press+3 })
			stop()
			last, total := polled(g)
			got := plant.delivered(t, addr, 0)
			if whenFull == PausePolling {
				checkSeqs(t, got, plant.devices, last, true)
				return
			}
			for id := range plant.devices {
				prev := int64(-1)
				for _, s := range got[id] {
					if int64(s.Seq) <= prev {
						t.Fatalf("device %s: seq %d after %d", id, s.Seq, prev)
					}
					prev = int64(s.Seq)
				}
				if uint64(prev) != last[id] {
					t.Errorf("device %s: last seq delivered %d, polled %d", id, prev, last[id])
				}
			}
			t.Logf("%d samples polled, %d of press-00 delivered", total, len(got["press-00"]))
		})
	}
}
