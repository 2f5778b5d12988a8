package broker

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/peers"
)

// TestKcatGroup runs librdkafka (Debian's kcat) against the broker beyond
// TestKcat: idempotent acks=all produce with every codec and the murmur2
// partitioner, balanced consumer groups (kcat -G) that commit, a rebalance
// as a member joins and leaves, and a broker restart mid-stream.
func TestKcatGroup(t *testing.T) {
	kcat := peers.Program(t, "kcat", "install it with: apt-get install kcat")
	rec := newPeerAPILog(t)
	dir := t.TempDir()
	b := startBroker(t, dir, fastGroups, rec.install)
	addr := b.Addr().String()
	adm := kadm.NewClient(newClient(t, addr))

	for _, codec := range []struct {
		name string
		attr uint8
	}{{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		t.Run("produce-consume/"+codec.name, func(t *testing.T) {
			topic, group, n := "kc-"+codec.name, "kc-"+codec.name+"-readers", 300
			createTopic(t, addr, topic, 3, nil)
			var in strings.Builder
			for i := 0; i < n; i++ {
				fmt.Fprintf(&in, "dev-%d:k-%d\n", i%10, i)
			}
			kcatProduce(t, kcat, addr, topic, codec.name, in.String())

			// franz-go reads back what librdkafka wrote: every record once,
			// each key on its murmur2 partition, compressed batches with
			// the codec asked for (librdkafka sends a batch uncompressed
			// when compression would not make it smaller).
			got := consumeN(t, addr, topic, n)
			part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
			at := map[[2]int64]*kgo.Record{}
			compressed := 0
			for _, r := range got {
				at[[2]int64{int64(r.Partition), r.Offset}] = r
				if want := int32(part.Partition(&kgo.Record{Key: r.Key}, 3)); r.Partition != want {
					t.Fatalf("key %s on partition %d, franz-go's murmur2 says %d", r.Key, r.Partition, want)
				}
				switch c := r.Attrs.CompressionType(); c {
				case codec.attr:
					compressed++
				case 0:
				default:
					t.Fatalf("%s in a batch with compression %d, want %d", r.Value, c, codec.attr)
				}
			}
			if len(at) != n || compressed == 0 {
				t.Fatalf("%d distinct records, %d in batches with compression %d", len(at), compressed, codec.attr)
			}

			// kcat reads them back as a group member and commits on exit.
			m := startKcatMember(t, kcat, addr, topic, group, "kcat-reader", "-c", strconv.Itoa(n))
			m.wait(t, fmt.Sprintf("kcat -G to consume all %d records", n), func() bool {
				return len(peerRecordSet(m.records())) >= n
			})
			m.proc.waitExit(t, 20*time.Second, true)
			for _, r := range m.records() {
				g := at[[2]int64{int64(r.p), r.o}]
				if g == nil || string(g.Value) != r.v || string(g.Key) != r.k {
					t.Fatalf("kcat read %d/%d as %s=%s, franz-go read %v", r.p, r.o, r.k, r.v, g)
				}
			}
			peerWaitCommitted(t, adm, group, topic, m.proc.diag)
		})
	}

	// librdkafka's default partitioner is consistent_random (CRC32), not
	// Kafka's murmur2: without partitioner=murmur2_random, keys land
	// elsewhere than franz-go and the Java client put them. Logged, as a
	// fact about the client for the docs.
	t.Run("default-partitioner", func(t *testing.T) {
		const topic, n = "kc-default-partitioner", 40
		createTopic(t, addr, topic, 6, nil)
		var in strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&in, "dev-%d:d-%d\n", i, i)
		}
		kcatProduce(t, kcat, addr, topic, "none", in.String(), "-X", "partitioner=consistent_random")
		part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
		differ := 0
		for _, r := range consumeN(t, addr, topic, n) {
			if int32(part.Partition(&kgo.Record{Key: r.Key}, 6)) != r.Partition {
				differ++
			}
		}
		t.Logf("with librdkafka's default partitioner %d of %d keys land on another partition than murmur2 puts them", differ, n)
	})

	t.Run("rebalance", func(t *testing.T) {
		runPeerRebalance(t, addr, adm, "kc-group", "kc-group", kgo.SnappyCompression(), func(name string) groupPeer {
			if name == "b" {
				// b leaves after 600 records: see kcatMember.leave.
				return startKcatMember(t, kcat, addr, "kc-group", "kc-group", "kcat-"+name, "-c", "600")
			}
			return startKcatMember(t, kcat, addr, "kc-group", "kc-group", "kcat-"+name)
		})
	})

	// Last: it replaces the broker.
	t.Run("restart", func(t *testing.T) {
		const topic, group, n = "kc-restart", "kc-restart", 3000
		createTopic(t, addr, topic, 3, nil)
		m := startKcatMember(t, kcat, addr, topic, group, "kcat-restart")
		prod := startPeer(t, "kcat -P", "", kcat, kcatProduceArgs(addr, topic, "lz4")...)
		// The test writes kcat's input: 10 lines every 30 ms, holding the
		// last 1000 lines back until the broker has been restarted.
		var (
			mu      sync.Mutex
			written int
		)
		wrote := func() int { mu.Lock(); defer mu.Unlock(); return written }
		restartedCh := make(chan struct{})
		writerDone := make(chan error, 1)
		go func() {
			var err error
			for i := 0; i < n && err == nil; i += 10 {
				if i == n-1000 {
					<-restartedCh
				}
				var sb strings.Builder
				for j := i; j < i+10; j++ {
					fmt.Fprintf(&sb, "dev-%d:r-%d\n", j%10, j)
				}
				if _, err = io.WriteString(prod.in, sb.String()); err == nil {
					mu.Lock()
					written += 10
					mu.Unlock()
				}
				time.Sleep(30 * time.Millisecond)
			}
			writerDone <- err
		}()
		// librdkafka commits every 5 s (auto.commit.interval.ms; kcat's -X
		// sets only the legacy topic-level property of that name), so this
		// waits for its first commit: the restart must keep it.
		var before map[int32]int64
		m.wait(t, "kcat to produce, consume and commit 300 records", func() bool {
			before = peerCommitted(adm, group, topic)
			return wrote() >= 600 && len(m.records()) >= 300 && peerTotal(before) >= 300
		})
		restarted := restartBrokerInPlace(t, b, dir, fastGroups, rec.install)
		close(restartedCh)
		t.Logf("broker restarted on %s with %d of %d records written to kcat -P, %d consumed, %v committed", restarted.Addr(), wrote(), n, len(m.records()), before)
		for p, o := range peerCommitted(adm, group, topic) {
			if o < before[p] {
				t.Fatalf("partition %d: committed %d before the restart, %d after", p, before[p], o)
			}
		}

		select {
		case err := <-writerDone:
			if err != nil {
				t.Fatalf("write to kcat -P: %v%s", err, prod.diag())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("writing to kcat -P did not finish%s", prod.diag())
		}
		prod.in.Close() // EOF: kcat flushes and exits
		prod.waitExit(t, 45*time.Second, true)
		for _, l := range prod.stderrLines() {
			if strings.Contains(l, "Delivery failed") {
				t.Fatalf("kcat -P: %s%s", l, prod.diag())
			}
		}
		// Idempotence across the restart: every line is in the log once.
		if total := peerTotal(peerEndOffsets(t, adm, topic)); total != n {
			t.Fatalf("%d records in the log, %d written once each", total, n)
		}
		seen := map[string]bool{}
		for _, r := range consumeN(t, addr, topic, n) {
			if seen[string(r.Value)] {
				t.Fatalf("%s is in the log twice", r.Value)
			}
			seen[string(r.Value)] = true
		}
		m.wait(t, "the kcat consumer to get every record", func() bool {
			return len(peerValueSet(m.records())) == n
		})
		peerWaitCommitted(t, adm, group, topic, m.proc.diag)
		m.leave(t)
		t.Logf("consumer: %d records processed for %d in the log (at-least-once redeliveries after the restart: %d), %d joins",
			len(m.records()), n, len(m.records())-n, len(m.joins()))
	})

	t.Logf("API versions librdkafka 2.0.2 (kcat) used:\n%s", rec.table("kcat"))
}

// kcatProduceArgs are the arguments of an idempotent acks=all kcat producer
// of "key:value" lines with Kafka's murmur2 partitioner. -E keeps kcat
// running when all brokers are down for a moment (it exits by default).
func kcatProduceArgs(addr, topic, codec string, extra ...string) []string {
	return append([]string{"-b", addr, "-t", topic, "-P", "-E", "-K:", "-z", codec,
		"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "partitioner=murmur2_random",
		"-X", "linger.ms=5", "-X", "client.id=kcat-producer",
		"-X", "reconnect.backoff.max.ms=1000"}, extra...)
}

// kcatProduce writes input ("key:value" lines) with kcat and waits for it
// to exit (after every record was acknowledged).
func kcatProduce(t *testing.T, kcat, addr, topic, codec, input string, extra ...string) {
	t.Helper()
	p := startPeer(t, "kcat -P", "", kcat, kcatProduceArgs(addr, topic, codec, extra...)...)
	if _, err := io.WriteString(p.in, input); err != nil {
		t.Fatalf("write to kcat: %v%s", err, p.diag())
	}
	p.in.Close()
	p.waitExit(t, 30*time.Second, true)
}

// kcatMember is a kcat -G process: one librdkafka balanced consumer that
// prints "partition offset key value" per record on stdout and its
// rebalances on stderr. Offsets are auto-committed every 100 ms and on a
// graceful stop (SIGTERM). -E keeps it running while the broker restarts.
type kcatMember struct {
	proc      *peerProc
	selfExits bool // started with -c: it leaves by itself

	mu                   sync.Mutex
	outParsed, errParsed int
	recs                 []peerRecord
	joined               []peerJoin
}

func startKcatMember(t *testing.T, kcat, addr, topic, group, clientID string, extra ...string) *kcatMember {
	args := append([]string{"-b", addr, "-G", group, topic, "-f", `%p %o %k %s\n`, "-u", "-E",
		"-X", "client.id=" + clientID,
		"-X", "auto.offset.reset=earliest",
		"-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100",
		"-X", "session.timeout.ms=10000", "-X", "heartbeat.interval.ms=300",
		"-X", "fetch.wait.max.ms=100", "-X", "reconnect.backoff.max.ms=1000",
	}, extra...)
	return &kcatMember{proc: startPeer(t, clientID, "", kcat, args...), selfExits: slices.Contains(extra, "-c")}
}

var (
	kcatRebalanced = regexp.MustCompile(`^% Group \S+ rebalanced \(memberid (\S+)\): (assigned|revoked): ?(.*)$`)
	kcatPartition  = regexp.MustCompile(`\[(\d+)\]`)
)

func (m *kcatMember) update() {
	out, errs := m.proc.stdoutLines(), m.proc.stderrLines()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range out[m.outParsed:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue // checked against the producer's records
		}
		p, _ := strconv.ParseInt(f[0], 10, 32)
		o, _ := strconv.ParseInt(f[1], 10, 64)
		m.recs = append(m.recs, peerRecord{p: int32(p), o: o, k: f[2], v: f[3], join: -1})
	}
	m.outParsed = len(out)
	for _, l := range errs[m.errParsed:] {
		g := kcatRebalanced.FindStringSubmatch(l)
		if g == nil || g[2] != "assigned" {
			continue
		}
		j := peerJoin{member: g[1], assignment: []int32{}}
		for _, pm := range kcatPartition.FindAllStringSubmatch(g[3], -1) {
			p, _ := strconv.ParseInt(pm[1], 10, 32)
			j.assignment = append(j.assignment, int32(p))
		}
		slices.Sort(j.assignment)
		m.joined = append(m.joined, j)
	}
	m.errParsed = len(errs)
}

func (m *kcatMember) records() []peerRecord {
	m.update()
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.recs)
}

func (m *kcatMember) joins() []peerJoin {
	m.update()
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.joined)
}

func (m *kcatMember) process() *peerProc { return m.proc }

// leave waits for kcat to exit by itself if it was started with -c: it
// then commits exactly what it printed and leaves the group. Otherwise it
// sends SIGTERM, which does the same except for one record when records
// are still coming: kcat drops, unprinted, a record it has already polled,
// whose offset librdkafka stored on poll and commits on close.
func (m *kcatMember) leave(t *testing.T) {
	t.Helper()
	if !m.selfExits {
		m.proc.stop(15 * time.Second)
	}
	m.proc.waitExit(t, 30*time.Second, true)
}

// tagsJoins: kcat prints records and rebalances on different streams, so
// records cannot be tied to a join.
func (m *kcatMember) tagsJoins() bool { return false }

// wait is peerWait with the member's output as diagnosis.
func (m *kcatMember) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	peerWait(t, 30*time.Second, what, func() bool {
		if cond() {
			return true
		}
		if m.proc.hasExited() {
			t.Fatalf("%s exited while the test needed it%s", m.proc.name, m.proc.diag())
		}
		return false
	}, m.proc.diag)
}
