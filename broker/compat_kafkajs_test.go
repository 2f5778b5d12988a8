package broker

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/peers"
)

// This file holds the kafkajs compatibility test and the helpers it shares
// with compat_kcatgroup_test.go: a peer process whose output lines are
// collected, a log handler recording the API versions each client used, a
// franz-go producer streaming keyed records, and the consumer group
// scenario (join, leave, checks) both clients run.

// kafkajsDir holds package.json, package-lock.json and the scripts; npm
// installs kafkajs into its node_modules.
const kafkajsDir = "testdata/kafkajs"

// kafkajsInstall is the command that installs the pinned kafkajs, from the
// repository root (as .ci/run does).
const kafkajsInstall = "npm ci --prefix broker/testdata/kafkajs --no-audit --no-fund"

// kafkajsPeer returns the node binary, or skips (fails under
// FACTORYWIRE_REQUIRE_PEERS=1) if node or kafkajs 2.2.4 is missing.
func kafkajsPeer(t *testing.T) string {
	t.Helper()
	node := peers.Program(t, "node", "install Node.js 20 and then kafkajs with: "+kafkajsInstall)
	raw, err := os.ReadFile(filepath.Join(kafkajsDir, "node_modules", "kafkajs", "package.json"))
	if err != nil {
		peers.Missing(t, "kafkajs is not installed; install it with: "+kafkajsInstall)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(raw, &pkg); err != nil || pkg.Version != "2.2.4" {
		peers.Missing(t, fmt.Sprintf("kafkajs %q is installed, 2.2.4 is pinned; reinstall it with: %s", pkg.Version, kafkajsInstall))
	}
	return node
}

// TestKafkajs runs kafkajs 2.2.4 (node) against the broker: idempotent
// acks=-1 produce with the codecs kafkajs core has (none and gzip: snappy,
// lz4 and zstd need extra codec packages, so they are not tested here),
// Java-compatible key partitioning, consumer group reads with commits, a
// rebalance as a member joins and leaves, and a broker restart mid-stream.
func TestKafkajs(t *testing.T) {
	node := kafkajsPeer(t)
	rec := newPeerAPILog(t)
	dir := t.TempDir()
	b := startBroker(t, dir, fastGroups, rec.install)
	addr := b.Addr().String()
	adm := kadm.NewClient(newClient(t, addr))

	script := func(t *testing.T, name string, args ...string) *peerProc {
		return startPeer(t, name, kafkajsDir, node, append([]string{name + ".js"}, args...)...)
	}

	// kafkajs 2.x's DefaultPartitioner is murmur2 as Java's: keys go to
	// the partitions franz-go (and the gateway) choose.
	t.Run("partitioner", func(t *testing.T) {
		keys := []string{"", "plant-a.press-07", "ключ-ü", strings.Repeat("x", 300)}
		for i := 0; i < 200; i++ {
			keys = append(keys, fmt.Sprintf("dev-%d", i))
		}
		raw, _ := json.Marshal(keys)
		p := startPeer(t, "partition.js", kafkajsDir, node, "partition.js", "--keys="+string(raw), "--counts=1,3,6,7,16,100")
		p.waitExit(t, 20*time.Second, true)
		lines := p.stdoutLines()
		if len(lines) != 6*len(keys) {
			t.Fatalf("%d lines for %d keys and 6 partition counts%s", len(lines), len(keys), p.diag())
		}
		for _, l := range lines {
			var e struct {
				Key      string
				Count, P int
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			want := kgo.StickyKeyPartitioner(nil).ForTopic("t").Partition(&kgo.Record{Key: []byte(e.Key)}, e.Count)
			if e.P != want {
				t.Errorf("key %q over %d partitions: kafkajs %d, franz-go murmur2 %d", e.Key, e.Count, e.P, want)
			}
		}
	})

	for _, codec := range []struct {
		name string
		attr uint8 // RecordBatch compression attribute
	}{{"none", 0}, {"gzip", 1}} {
		t.Run("produce-consume/"+codec.name, func(t *testing.T) {
			topic, group, n := "js-"+codec.name, "js-"+codec.name+"-readers", 600
			createTopic(t, addr, topic, 3, nil)
			prod := script(t, "produce", "--brokers="+addr, "--topic="+topic, "--count="+strconv.Itoa(n),
				"--codec="+codec.name, "--batch=50", "--prefix=v")
			prod.waitExit(t, 40*time.Second, true)
			acks := jsEvents(prod.stdoutLines())
			if done := lastOfType(acks, "done"); done == nil || done.Acked != n {
				t.Fatalf("producer did not report %d acknowledged records: %s", n, prod.diag())
			}

			// franz-go reads back what kafkajs wrote: every record once,
			// each key on its murmur2 partition, the batch compressed with
			// the codec asked for, and at the offsets kafkajs was told.
			got := consumeN(t, addr, topic, n)
			at := map[[2]int64]*kgo.Record{}
			seen := map[string]bool{}
			part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
			for _, r := range got {
				at[[2]int64{int64(r.Partition), r.Offset}] = r
				if seen[string(r.Value)] {
					t.Fatalf("%s read twice", r.Value)
				}
				seen[string(r.Value)] = true
				if want := int32(part.Partition(&kgo.Record{Key: r.Key}, 3)); r.Partition != want {
					t.Fatalf("key %s on partition %d, franz-go's murmur2 says %d", r.Key, r.Partition, want)
				}
				if c := r.Attrs.CompressionType(); c != codec.attr {
					t.Fatalf("%s in a batch with compression %d, want %d", r.Value, c, codec.attr)
				}
				if len(r.Headers) != 1 || r.Headers[0].Key != "seq" || "v-"+string(r.Headers[0].Value) != string(r.Value) {
					t.Fatalf("%s: headers %v", r.Value, r.Headers)
				}
			}
			for _, e := range acks {
				if e.Type != "ack" {
					continue
				}
				next := map[int32]int64{}
				for _, m := range e.Meta {
					if m.Err != 0 {
						t.Fatalf("send %d: partition %d error %d", e.First, m.P, m.Err)
					}
					base, _ := strconv.ParseInt(m.Base, 10, 64)
					next[m.P] = base
				}
				for i := e.First; i < e.First+e.N; i++ {
					key := fmt.Sprintf("dev-%d", i%10)
					p := int32(part.Partition(&kgo.Record{Key: []byte(key)}, 3))
					r := at[[2]int64{int64(p), next[p]}]
					if r == nil || string(r.Value) != fmt.Sprintf("v-%d", i) {
						t.Fatalf("v-%d: kafkajs was told %d/%d, which holds %v", i, p, next[p], r)
					}
					next[p]++
				}
			}

			// kafkajs reads them back in a consumer group and commits.
			c := startKafkajsMember(t, script, addr, topic, group, "kafkajs-reader")
			peerWait(t, 30*time.Second, fmt.Sprintf("kafkajs to consume all %d records", n), func() bool {
				peerAlive(t, c)
				return len(peerRecordSet(c.records())) >= n
			}, c.proc.diag)
			for _, r := range c.records() {
				g := at[[2]int64{int64(r.p), r.o}]
				if g == nil || string(g.Value) != r.v || string(g.Key) != r.k {
					t.Fatalf("kafkajs read %d/%d as %s=%s, franz-go read %v", r.p, r.o, r.k, r.v, g)
				}
			}
			peerWaitCommitted(t, adm, group, topic, c.proc.diag)
			c.leave(t)
		})
	}

	t.Run("rebalance", func(t *testing.T) {
		// kafkajs core decodes gzip but not snappy, franz-go's default.
		runPeerRebalance(t, addr, adm, "js-group", "js-group", kgo.GzipCompression(), func(name string) groupPeer {
			return startKafkajsMember(t, script, addr, "js-group", "js-group", "kafkajs-"+name)
		})
	})

	// Last: it replaces the broker.
	t.Run("restart", func(t *testing.T) {
		const topic, group, n = "js-restart", "js-restart", 3000
		createTopic(t, addr, topic, 3, nil)
		c := startKafkajsMember(t, script, addr, topic, group, "kafkajs-restart")
		// The producer waits at 2000 records until the broker has been
		// restarted, so the restart cannot come after its last record.
		prod := script(t, "produce", "--brokers="+addr, "--topic="+topic, "--count="+strconv.Itoa(n),
			"--codec=gzip", "--batch=10", "--pace-ms=5", "--prefix=r", "--pause-at=2000")
		acked := func() int {
			k := 0
			for _, e := range jsEvents(prod.stdoutLines()) {
				if e.Type == "ack" {
					k += e.N
				}
			}
			return k
		}
		var before map[int32]int64
		peerWait(t, 30*time.Second, "kafkajs to produce, consume and commit 500 records", func() bool {
			peerAlive(t, c)
			before = peerCommitted(adm, group, topic)
			return acked() >= 500 && len(c.records()) >= 500 && peerTotal(before) >= 500
		}, func() string { return prod.diag() + c.proc.diag() })
		restarted := restartBrokerInPlace(t, b, dir, fastGroups, rec.install)
		t.Logf("broker restarted on %s with %d of %d records acknowledged, %d consumed, %v committed", restarted.Addr(), acked(), n, len(c.records()), before)
		for p, o := range peerCommitted(adm, group, topic) {
			if o < before[p] {
				t.Fatalf("partition %d: committed %d before the restart, %d after", p, before[p], o)
			}
		}
		io.WriteString(prod.in, "resume\n")

		prod.waitExit(t, 45*time.Second, true)
		if done := lastOfType(jsEvents(prod.stdoutLines()), "done"); done == nil || done.Acked != n {
			t.Fatalf("producer did not finish: %s", prod.diag())
		}
		// Idempotence across the restart: every value is in the log once.
		if total := peerTotal(peerEndOffsets(t, adm, topic)); total != n {
			t.Fatalf("%d records in the log, %d sent once each", total, n)
		}
		seen := map[string]bool{}
		for _, r := range consumeN(t, addr, topic, n) {
			if seen[string(r.Value)] {
				t.Fatalf("%s is in the log twice", r.Value)
			}
			seen[string(r.Value)] = true
		}
		peerWait(t, 30*time.Second, "the kafkajs consumer to get every record", func() bool {
			peerAlive(t, c)
			return len(peerValueSet(c.records())) == n
		}, c.proc.diag)
		for v := range peerValueSet(c.records()) {
			if !seen[v] {
				t.Fatalf("consumed %s, which is not in the log", v)
			}
		}
		peerWaitCommitted(t, adm, group, topic, c.proc.diag)
		c.leave(t)
		t.Logf("consumer: %d records processed for %d in the log (at-least-once redeliveries after the restart: %d), %d joins, crashes: %v",
			len(c.records()), n, len(c.records())-n, len(c.joins()), c.crashes())
	})

	t.Logf("API versions kafkajs 2.2.4 used:\n%s", rec.table("kafkajs"))
}

// jsEvent is one line a kafkajs script printed (see the scripts' heads).
type jsEvent struct {
	Type  string `json:"type"`
	First int    `json:"first"`
	N     int    `json:"n"`
	Meta  []struct {
		P    int32  `json:"p"`
		Base string `json:"base"`
		Err  int    `json:"err"`
	} `json:"meta"`
	Acked      int     `json:"acked"`
	Member     string  `json:"member"`
	Assignment []int32 `json:"assignment"`
	P          int32   `json:"p"`
	O          string  `json:"o"`
	K          string  `json:"k"`
	V          string  `json:"v"`
	Error      string  `json:"error"`
	Restart    bool    `json:"restart"`
	Why        string  `json:"why"`
	Bad        string  `json:"-"` // a line that was not JSON
}

func jsEvents(lines []string) []jsEvent {
	out := make([]jsEvent, 0, len(lines))
	for _, l := range lines {
		var e jsEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			e = jsEvent{Type: "bad", Bad: l}
		}
		out = append(out, e)
	}
	return out
}

func lastOfType(es []jsEvent, typ string) *jsEvent {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Type == typ {
			return &es[i]
		}
	}
	return nil
}

// kafkajsMember is a consume.js process: one kafkajs consumer group member.
type kafkajsMember struct {
	proc *peerProc

	mu     sync.Mutex
	parsed int // stdout lines parsed so far
	recs   []peerRecord
	joined []peerJoin
	crash  []string
}

func startKafkajsMember(t *testing.T, script func(*testing.T, string, ...string) *peerProc, addr, topic, group, clientID string) *kafkajsMember {
	return &kafkajsMember{proc: script(t, "consume", "--brokers="+addr, "--topic="+topic, "--group="+group, "--client-id="+clientID)}
}

// update parses the lines printed since the last call.
func (m *kafkajsMember) update() {
	lines := m.proc.stdoutLines()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range jsEvents(lines[m.parsed:]) {
		switch e.Type {
		case "join":
			m.joined = append(m.joined, peerJoin{member: e.Member, assignment: e.Assignment})
		case "rec":
			o, _ := strconv.ParseInt(e.O, 10, 64)
			// Each record is tagged with the join it was processed under:
			// stdout keeps the script's order.
			m.recs = append(m.recs, peerRecord{p: e.P, o: o, k: e.K, v: e.V, join: len(m.joined) - 1})
		case "crash":
			m.crash = append(m.crash, fmt.Sprintf("%s (restart %v)", e.Error, e.Restart))
		case "bad", "error":
			m.crash = append(m.crash, "script: "+e.Bad+e.Error)
		}
	}
	m.parsed = len(lines)
}

func (m *kafkajsMember) records() []peerRecord {
	m.update()
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.recs)
}

func (m *kafkajsMember) joins() []peerJoin {
	m.update()
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.joined)
}

func (m *kafkajsMember) crashes() []string {
	m.update()
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.crash)
}

func (m *kafkajsMember) process() *peerProc { return m.proc }

// leave closes the script's stdin: kafkajs disconnects, which commits the
// offsets processed and sends LeaveGroup.
func (m *kafkajsMember) leave(t *testing.T) {
	m.proc.stop(15 * time.Second)
	if m.proc.waitErr != nil {
		t.Errorf("%s did not stop cleanly: %v%s", m.proc.name, m.proc.waitErr, m.proc.diag())
	}
}

// tagsJoins: records carry the join they were processed under.
func (m *kafkajsMember) tagsJoins() bool { return true }

// ---- helpers shared with compat_kcatgroup_test.go ----

// peerProc is a running peer program (node script or kcat). Its stdout and
// stderr lines are collected as they come; it is stopped when the test
// ends (stdin closed, SIGTERM, then SIGKILL after a grace period).
type peerProc struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser

	mu       sync.Mutex
	out, err []string
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
}

func startPeer(t testing.TB, name, dir, prog string, args ...string) *peerProc {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &peerProc{name: name, cmd: cmd, in: in, exited: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Add(2)
	collect := func(r io.Reader, dst *[]string) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			*dst = append(*dst, sc.Text())
			p.mu.Unlock()
		}
		io.Copy(io.Discard, r) // a line over 4 MiB: keep draining
	}
	go collect(stdout, &p.out)
	go collect(stderr, &p.err)
	go func() {
		readers.Wait()
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(10 * time.Second) })
	return p
}

func (p *peerProc) stdoutLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.out)
}

func (p *peerProc) stderrLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.err)
}

func (p *peerProc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop asks the program to finish (stdin closed, then SIGTERM), waits up to
// grace, and kills it after that. It returns once the program is gone.
func (p *peerProc) stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		p.in.Close()
		if !p.hasExited() {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.exited:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// waitExit waits for the program to end by itself (killing it after
// timeout) and, with mustSucceed, fails the test unless it exited 0.
func (p *peerProc) waitExit(t testing.TB, timeout time.Duration, mustSucceed bool) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.stop(time.Second)
		t.Fatalf("%s did not finish within %v: %s", p.name, timeout, p.diag())
	}
	if mustSucceed && p.waitErr != nil {
		t.Fatalf("%s: %v: %s", p.name, p.waitErr, p.diag())
	}
}

// diag describes the program's state and the end of its output, for a
// failure message.
func (p *peerProc) diag() string {
	state := "running"
	if p.hasExited() {
		state = fmt.Sprintf("exited (%v)", p.waitErr)
	}
	out, errs := p.stdoutLines(), p.stderrLines()
	tail := func(ls []string, n int) string {
		if len(ls) > n {
			ls = ls[len(ls)-n:]
		}
		return strings.Join(ls, "\n  ")
	}
	return fmt.Sprintf("\n%s %s; %d stdout lines, last:\n  %s\nstderr, last:\n  %s\n", p.name, state, len(out), tail(out, 5), tail(errs, 20))
}

// peerWait polls cond until it holds, failing after timeout with what and
// diag's description. It bounds every wait of these tests: nothing asserts
// how long anything took.
func peerWait(t testing.TB, timeout time.Duration, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			d := ""
			if diag != nil {
				d = diag()
			}
			t.Fatalf("timed out after %v waiting for %s%s", timeout, what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peerAPILog is a slog handler for the broker's logger: it records the
// (api, version) of every request per client id (the broker logs each at
// Debug), keeps warnings as evidence, and passes Info and above to the
// verbose test log.
type peerAPILog struct {
	mu    sync.Mutex
	seen  map[string]map[string]map[int64]int // client id -> api -> version -> requests
	warns []string
	next  slog.Handler
}

func newPeerAPILog(t testing.TB) *peerAPILog {
	r := &peerAPILog{seen: map[string]map[string]map[int64]int{}}
	if l := testLogger(t); l != nil {
		r.next = l.Handler()
	}
	return r
}

// install is a startBroker mutator that makes r the broker's log handler.
func (r *peerAPILog) install(c *Config) { c.Logger = slog.New(peerAPILogHandler{r: r}) }

type peerAPILogHandler struct {
	r     *peerAPILog
	attrs []slog.Attr
}

func (h peerAPILogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h peerAPILogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return peerAPILogHandler{r: h.r, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h peerAPILogHandler) WithGroup(string) slog.Handler { return h }

func (h peerAPILogHandler) Handle(ctx context.Context, rec slog.Record) error {
	r := h.r
	if rec.Message == "request" && rec.Level == slog.LevelDebug {
		var api, client string
		var version int64 = -1
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "api":
				api = a.Value.String()
			case "version":
				version = a.Value.Int64()
			case "client_id":
				client = a.Value.String()
			}
			return true
		})
		r.mu.Lock()
		if r.seen[client] == nil {
			r.seen[client] = map[string]map[int64]int{}
		}
		if r.seen[client][api] == nil {
			r.seen[client][api] = map[int64]int{}
		}
		r.seen[client][api][version]++
		r.mu.Unlock()
		return nil
	}
	if rec.Level >= slog.LevelWarn {
		var sb strings.Builder
		sb.WriteString(rec.Message)
		for _, a := range h.attrs {
			fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
		}
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
			return true
		})
		r.mu.Lock()
		r.warns = append(r.warns, sb.String())
		r.mu.Unlock()
	}
	if r.next != nil && rec.Level >= slog.LevelInfo {
		return r.next.WithAttrs(h.attrs).Handle(ctx, rec)
	}
	return nil
}

// table lists, for the clients whose id starts with prefix, each API and
// the versions they sent (request counts in parentheses).
func (r *peerAPILog) table(prefix string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	merged := map[string]map[int64]int{}
	for client, apis := range r.seen {
		if !strings.HasPrefix(client, prefix) {
			continue
		}
		for api, vs := range apis {
			if merged[api] == nil {
				merged[api] = map[int64]int{}
			}
			for v, n := range vs {
				merged[api][v] += n
			}
		}
	}
	apis := make([]string, 0, len(merged))
	for api := range merged {
		apis = append(apis, api)
	}
	sort.Strings(apis)
	var sb strings.Builder
	for _, api := range apis {
		var vs []int64
		for v := range merged[api] {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		var parts []string
		for _, v := range vs {
			parts = append(parts, fmt.Sprintf("v%d (%d)", v, merged[api][v]))
		}
		fmt.Fprintf(&sb, "  %-16s %s\n", api, strings.Join(parts, ", "))
	}
	r.warnLines(&sb)
	return sb.String()
}

func (r *peerAPILog) warnLines(sb *strings.Builder) {
	if len(r.warns) == 0 {
		return
	}
	fmt.Fprintf(sb, "  broker warnings (%d):\n", len(r.warns))
	for i, w := range r.warns {
		if i == 20 {
			fmt.Fprintf(sb, "    … %d more\n", len(r.warns)-i)
			break
		}
		fmt.Fprintf(sb, "    %s\n", w)
	}
}

// restartBrokerInPlace closes b and starts a broker on the same data dir and the
// same address, so clients reconnect to where they were. The port is free
// once Close returns, but binding is retried briefly in case the kernel is
// slow to release it.
func restartBrokerInPlace(t *testing.T, b *Broker, dir string, mutate ...func(*Config)) *Broker {
	t.Helper()
	addr := b.Addr().String()
	if err := b.Close(); err != nil {
		t.Fatalf("close broker: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Listen = addr
	cfg.DataDir = dir
	cfg.Logger = testLogger(t)
	for _, m := range mutate {
		m(&cfg)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nb, err := New(cfg)
		if err == nil {
			t.Cleanup(func() { nb.Close() })
			return nb
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("restart broker on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peerWaitCommitted waits until the group's committed offsets equal the
// topic's end offsets on every partition.
func peerWaitCommitted(t testing.TB, adm *kadm.Client, group, topic string, diag func() string) {
	t.Helper()
	var last string
	peerWait(t, 30*time.Second, "committed offsets of "+group+" to reach the end offsets of "+topic, func() bool {
		ok, desc := peerCommittedAtEnd(adm, group, topic)
		last = desc
		return ok
	}, func() string { return "\nlast seen: " + last + diag() })
}

// peerCommitted returns the group's committed offset per partition of
// topic (partitions without one are left out); nil if the fetch failed.
func peerCommitted(adm *kadm.Client, group, topic string) map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil
	}
	out := map[int32]int64{}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

func peerTotal(offsets map[int32]int64) int64 {
	var sum int64
	for _, o := range offsets {
		sum += o
	}
	return sum
}

func peerCommittedAtEnd(adm *kadm.Client, group, topic string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false, err.Error()
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	ok := true
	var desc []string
	ends.Each(func(e kadm.ListedOffset) {
		c, found := committed.Lookup(topic, e.Partition)
		at := int64(-1)
		if found {
			at = c.At
		}
		desc = append(desc, fmt.Sprintf("p%d committed %d end %d", e.Partition, at, e.Offset))
		ok = ok && e.Err == nil && found && c.At == e.Offset
	})
	sort.Strings(desc)
	return ok, strings.Join(desc, ", ")
}

// peerRecord is one record a group member processed.
type peerRecord struct {
	p    int32
	o    int64
	k, v string
	join int // index of the member's join it was processed under, if known
}

// peerJoin is what a member reported when it (re)joined: its member id
// and its partitions of the topic.
type peerJoin struct {
	member     string
	assignment []int32
}

// groupPeer is one consumer group member run by a third-party client.
type groupPeer interface {
	records() []peerRecord
	joins() []peerJoin
	process() *peerProc
	// leave makes the member leave the group and waits until its program
	// has exited.
	leave(t *testing.T)
	// tagsJoins reports whether records carry the join they were
	// processed under (kafkajs prints both on one stream; kcat does not).
	tagsJoins() bool
}

func peerRecordSet(rs []peerRecord) map[[2]int64]string {
	out := map[[2]int64]string{}
	for _, r := range rs {
		out[[2]int64{int64(r.p), r.o}] = r.v
	}
	return out
}

func peerValueSet(rs []peerRecord) map[string]bool {
	out := map[string]bool{}
	for _, r := range rs {
		out[r.v] = true
	}
	return out
}

// peerFeed produces keyed records with franz-go (idempotent, acks=all,
// batches compressed with codec) at a modest pace until stopped, and
// remembers where each landed.
type peerFeed struct {
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	acked map[[2]int64]string // partition/offset -> value
	errs  []error
}

func startPeerFeed(t *testing.T, addr, topic string, codec kgo.CompressionCodec) *peerFeed {
	s := &peerFeed{
		cl:    newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec)),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		acked: map[[2]int64]string{},
	}
	go func() {
		defer close(s.done)
		for i := 0; i < 200000; i++ {
			select {
			case <-s.stop:
				return
			default:
			}
			r := &kgo.Record{Key: []byte(fmt.Sprintf("dev-%d", i%16)), Value: []byte(fmt.Sprintf("s-%d", i))}
			s.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				s.mu.Lock()
				defer s.mu.Unlock()
				if err != nil {
					s.errs = append(s.errs, err)
					return
				}
				s.acked[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value)
			})
			if i%20 == 19 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { s.finish(t) })
	return s
}

// finish stops producing and waits for every record to be acknowledged.
func (s *peerFeed) finish(t testing.TB) map[[2]int64]string {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.cl.Flush(ctx); err != nil {
		t.Errorf("flush the franz-go producer: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		t.Errorf("franz-go producer: %d records failed, first: %v", len(s.errs), s.errs[0])
	}
	return s.acked
}

// peerAssignments returns the group's state and, per member id, its
// sorted partitions of topic, as the broker holds them.
func peerAssignments(adm *kadm.Client, group, topic string) (string, map[string][]int32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return "", nil, err
	}
	d := described[group]
	if d.Err != nil {
		return "", nil, d.Err
	}
	out := map[string][]int32{}
	for _, m := range d.Members {
		var ps []int32
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range a.Topics {
				if tp.Topic == topic {
					ps = append(ps, tp.Partitions...)
				}
			}
		}
		slices.Sort(ps)
		out[m.MemberID] = ps
	}
	return d.State, out, nil
}

// peerWaitRebalanced waits until the rebalance has completed for exactly the
// given members: the broker holds the group Stable with them alone, each
// member's latest join reported the assignment the broker holds for it, and
// the assignments split all partitions of topic without overlap. It
// returns the end offsets read after that (records at or past them were
// written after every member had its new partitions) and, per partition,
// the index of the member that owns it.
func peerWaitRebalanced(t *testing.T, adm *kadm.Client, group, topic string, partitions int32, members ...groupPeer) (map[int32]int64, map[int32]int) {
	t.Helper()
	var last string
	var owner map[int32]int
	done := func() bool {
		peerAlive(t, members...)
		state, assigned, err := peerAssignments(adm, group, topic)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("broker: %s %v; members:", state, assigned)
		for _, m := range members {
			js := m.joins()
			if len(js) == 0 {
				last += " (not joined)"
				continue
			}
			last += fmt.Sprintf(" %s=%v", js[len(js)-1].member, js[len(js)-1].assignment)
		}
		if state != "Stable" || len(assigned) != len(members) {
			return false
		}
		owner = map[int32]int{}
		for i, m := range members {
			js := m.joins()
			if len(js) == 0 {
				return false
			}
			j := js[len(js)-1]
			want, ok := assigned[j.member]
			if !ok || !slices.Equal(want, j.assignment) || len(want) == 0 {
				return false
			}
			for _, p := range want {
				if _, dup := owner[p]; dup {
					return false
				}
				owner[p] = i
			}
		}
		return len(owner) == int(partitions)
	}
	diag := func() string {
		s := "\nlast seen: " + last
		for _, m := range members {
			s += m.process().diag()
		}
		return s
	}
	peerWait(t, 30*time.Second, fmt.Sprintf("the rebalance of %s to complete with %d members", group, len(members)), done, diag)
	return peerEndOffsets(t, adm, topic), owner
}

func peerEndOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) { out[e.Partition] = e.Offset })
	return out
}

// peerAlive fails the test at once if a member's program has exited: what
// the test waits for will not come.
func peerAlive(t testing.TB, members ...groupPeer) {
	t.Helper()
	for _, m := range members {
		if p := m.process(); p.hasExited() {
			t.Fatalf("%s exited while the test needed it%s", p.name, p.diag())
		}
	}
}

// runPeerRebalance creates a 6-partition topic that a franz-go producer
// writes to throughout, and a group of third-party members (start makes
// one): A joins alone and consumes; B joins and the partitions split; B
// leaves (its leave method) and A takes everything back. Then:
//   - no record is lost: every acknowledged record was processed;
//   - none is processed by two members after a rebalance completed: each
//     record written after the join had completed (while both were members,
//     until the test read the end offsets before B's leave) was processed
//     exactly once, and by B only if the broker had assigned its partition
//     to B; each written after the leave completed, exactly once, by A.
//     Duplicates are allowed only for records in flight while the group
//     rebalanced, as at-least-once delivery allows, and are counted;
//   - where the client says which join a record was processed under, its
//     partition was in that join's assignment;
//   - committed offsets finally equal the end offsets.
func runPeerRebalance(t *testing.T, addr string, adm *kadm.Client, topic, group string, codec kgo.CompressionCodec, start func(name string) groupPeer) {
	const partitions = 6
	createTopic(t, addr, topic, partitions, nil)
	stream := startPeerFeed(t, addr, topic, codec)

	a := start("a")
	peerWait(t, 30*time.Second, "member a to own all partitions and process 200 records", func() bool {
		peerAlive(t, a)
		js := a.joins()
		return len(js) > 0 && len(js[len(js)-1].assignment) == partitions && len(a.records()) >= 200
	}, a.process().diag)

	b := start("b")
	joined, owner := peerWaitRebalanced(t, adm, group, topic, partitions, a, b)
	after := func(m groupPeer, from map[int32]int64) int {
		k := 0
		for _, r := range m.records() {
			if r.o >= from[r.p] {
				k++
			}
		}
		return k
	}
	// B may leave by itself once it has processed enough (kcat -c).
	peerWait(t, 30*time.Second, "both members to process 100 records each after the join", func() bool {
		peerAlive(t, a)
		return after(a, joined) >= 100 && after(b, joined) >= 100
	}, func() string { return a.process().diag() + b.process().diag() })
	leaving := peerEndOffsets(t, adm, topic)
	b.leave(t)
	left, _ := peerWaitRebalanced(t, adm, group, topic, partitions, a)
	peerWait(t, 30*time.Second, "member a to process 100 records after b left", func() bool {
		peerAlive(t, a)
		return after(a, left) >= 100
	}, a.process().diag)

	acked := stream.finish(t)
	missing := func() [][2]int64 {
		all := peerRecordSet(a.records())
		for k, v := range peerRecordSet(b.records()) {
			all[k] = v
		}
		var out [][2]int64
		for k := range acked {
			if _, ok := all[k]; !ok {
				out = append(out, k)
			}
		}
		return out
	}
	peerWait(t, 30*time.Second, fmt.Sprintf("every one of %d acknowledged records to be processed", len(acked)), func() bool {
		peerAlive(t, a)
		return len(missing()) == 0
	}, func() string {
		m := missing()
		slices.SortFunc(m, func(x, y [2]int64) int { return cmp.Or(cmp.Compare(x[0], y[0]), cmp.Compare(x[1], y[1])) })
		_, desc := peerCommittedAtEnd(adm, group, topic)
		return fmt.Sprintf("\n%d never processed, first %v; end offsets at the join %v, before b left %v, after the leave %v; %s%s%s",
			len(m), m[:min(len(m), 10)], joined, leaving, left, desc, a.process().diag(), b.process().diag())
	})
	peerWaitCommitted(t, adm, group, topic, a.process().diag)
	a.leave(t)
	if ok, desc := peerCommittedAtEnd(adm, group, topic); !ok {
		t.Fatalf("after member a left: %s", desc)
	}

	// Where each record was processed, and how often.
	type where struct{ a, b int }
	count := map[[2]int64]*where{}
	for i, m := range []groupPeer{a, b} {
		name := string(rune('a' + i))
		js := m.joins()
		for _, r := range m.records() {
			k := [2]int64{int64(r.p), r.o}
			if v, ok := acked[k]; !ok || v != r.v {
				t.Errorf("member %s processed %d/%d = %q, the producer wrote %q there", name, r.p, r.o, r.v, v)
			}
			if count[k] == nil {
				count[k] = &where{}
			}
			if i == 0 {
				count[k].a++
			} else {
				count[k].b++
			}
			if m.tagsJoins() {
				if r.join < 0 {
					t.Errorf("member %s processed %d/%d before it joined the group", name, r.p, r.o)
				} else if !slices.Contains(js[r.join].assignment, r.p) {
					t.Errorf("member %s processed %d/%d under join %d, which assigned it %v", name, r.p, r.o, r.join, js[r.join].assignment)
				}
			}
		}
	}
	var redelivered int
	for k, w := range count {
		p, o := int32(k[0]), k[1]
		switch {
		case o >= left[p]:
			if w.a != 1 || w.b != 0 {
				t.Errorf("%d/%d written after b left: processed %d times by a and %d by b, want once by a", p, o, w.a, w.b)
			}
		case o >= joined[p] && o < leaving[p]:
			if w.a+w.b != 1 {
				t.Errorf("%d/%d written while a and b were both members: processed %d times by a and %d by b, want once", p, o, w.a, w.b)
			}
			if w.b > 0 && owner[p] != 1 {
				t.Errorf("%d/%d written while a and b were both members: processed by b, the broker assigned partition %d to a", p, o, p)
			}
		default:
			if w.a+w.b > 1 {
				redelivered++
			}
		}
	}
	t.Logf("%d records; joins: a %d, b %d; processed by a %d, by b %d; %d redelivered while the group rebalanced",
		len(acked), len(a.joins()), len(b.joins()), len(a.records()), len(b.records()), redelivered)
}
