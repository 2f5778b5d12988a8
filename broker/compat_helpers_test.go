package broker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The client compatibility tests (compat_sarama_test.go,
// compat_kafkago_test.go) run one scenario per client through a
// compatClient: keyed records with every codec the client has, a consumer
// group that rebalances as a member joins and leaves, and a broker restart
// on the same address and data dir while the group consumes and a producer
// produces. What each client negotiated is read from the broker's debug log.

// compatClient adapts one client library to the shared scenarios.
type compatClient struct {
	// id is the client id the library sends in every request header, so
	// its requests can be told apart from the franz-go admin client's.
	id string
	// idempotent is whether the producer is idempotent: then retries
	// across a broker restart must not store a record twice.
	idempotent bool
	// codecs are the compression codecs the producer supports, by
	// Kafka's names.
	codecs []string
	// producer returns a synchronous produce function for topic with
	// codec: a nil error means every record was acknowledged. Records are
	// partitioned by key with Kafka's murmur2 mapping.
	producer func(t *testing.T, addr, topic, codec string) func(ctx context.Context, recs []compatRecord) error
	// read reads every partition of topic from its start up to ends
	// (exclusive) without a group, in offset order per partition.
	read func(t *testing.T, addr, topic string, ends map[int32]int64) []compatRecord
	// member joins group as a consumer of topic, reports what it holds and
	// processes to l under name, and commits what it processed. leave
	// stops processing, commits, leaves the group and waits for all of it.
	member func(t *testing.T, addr, topic, group, name string, l *groupLedger) (leave func())
}

// compatRecord is a test record: key is a device, seq counts per key from 0,
// and the value repeats both so content can be checked after decompression.
type compatRecord struct {
	key       string
	seq       int
	value     string
	headers   map[string]string
	partition int32
	offset    int64
}

const compatContentType = "application/json"

func makeCompatRecord(key string, seq int) compatRecord {
	// Repetitive padding so that every codec actually compresses.
	pad := strings.Repeat("pressure=4.2;temp=61.5;", 4)
	return compatRecord{
		key:     key,
		seq:     seq,
		value:   fmt.Sprintf(`{"device":%q,"seq":%d,"pad":%q}`, key, seq, pad),
		headers: map[string]string{"content-type": compatContentType},
	}
}

// parseCompatValue returns the key and seq a value was made with.
func parseCompatValue(v string) (string, int, bool) {
	var key, pad string
	var seq int
	if _, err := fmt.Sscanf(v, `{"device":%q,"seq":%d,"pad":%q}`, &key, &seq, &pad); err != nil {
		return "", 0, false
	}
	return key, seq, true
}

// recordSource makes keyed records with a per-key sequence, round-robin
// over keys.
type recordSource struct {
	keys []string
	next map[string]int
	i    int
}

func newRecordSource(keys int) *recordSource {
	s := &recordSource{next: map[string]int{}}
	for k := 0; k < keys; k++ {
		s.keys = append(s.keys, "dev-"+strconv.Itoa(k))
	}
	return s
}

func (s *recordSource) take(n int) []compatRecord {
	out := make([]compatRecord, 0, n)
	for ; n > 0; n-- {
		key := s.keys[s.i%len(s.keys)]
		s.i++
		out = append(out, makeCompatRecord(key, s.next[key]))
		s.next[key]++
	}
	return out
}

// kafkaPartition is the partition Kafka's default partitioner (murmur2 of
// the key, as franz-go's StickyKeyPartitioner) picks for key.
func kafkaPartition(key string, partitions int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("t").Partition(&kgo.Record{Key: []byte(key)}, partitions))
}

// murmur2Vectors are Kafka's own murmur2 results (UtilsTest.testMurmur2):
// a partitioner that claims Kafka compatibility maps each key to
// (hash & 0x7fffffff) % partitions.
var murmur2Vectors = []struct {
	key  string
	hash int32
}{
	{"21", -973932308},
	{"foobar", -790332482},
	{"a-little-bit-long-string", -985981536},
	{"a-little-bit-longer-string", -1486304829},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
	{"abc", 479470107},
}

// partitionerMatch counts the keys (Kafka's vectors and dev-0…dev-999, over
// several partition counts) that pick maps as Kafka's murmur2 does.
func partitionerMatch(t *testing.T, pick func(key string, partitions int) int32) (match, total int) {
	t.Helper()
	for _, n := range []int{1, 3, 6, 7, 12, 100} {
		for _, v := range murmur2Vectors {
			want := int32(uint32(v.hash)&0x7fffffff) % int32(n)
			if got := kafkaPartition(v.key, n); got != want {
				t.Fatalf("franz-go murmur2 maps %q to %d of %d, Kafka to %d", v.key, got, n, want)
			}
			total++
			if pick(v.key, n) == want {
				match++
			}
		}
		for k := 0; k < 1000; k++ {
			key := "dev-" + strconv.Itoa(k)
			total++
			if pick(key, n) == kafkaPartition(key, n) {
				match++
			}
		}
	}
	return match, total
}

// negotiatedVersions is a slog handler for the broker's logger that keeps,
// per client id, the highest version of each API the broker served, and
// every warning or error the broker logged.
type negotiatedVersions struct {
	mu       sync.Mutex
	versions map[string]map[string]int64 // client id -> API name -> max version
	warnings []string
	tee      slog.Handler // with -v: the broker's info and above, to stderr
}

func newNegotiatedVersions() *negotiatedVersions {
	n := &negotiatedVersions{versions: map[string]map[string]int64{}}
	if testing.Verbose() {
		n.tee = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
	}
	return n
}

func (n *negotiatedVersions) logger() *slog.Logger { return slog.New(versionsHandler{n: n}) }

type versionsHandler struct {
	n     *negotiatedVersions
	attrs []slog.Attr
}

func (h versionsHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h versionsHandler) Handle(ctx context.Context, r slog.Record) error {
	n := h.n
	if r.Level >= slog.LevelInfo && n.tee != nil {
		n.tee.WithAttrs(h.attrs).Handle(ctx, r)
	}
	if r.Message == "request" {
		var api, client string
		var version int64 = -1
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "api":
				api = a.Value.String()
			case "client_id":
				client = a.Value.String()
			case "version":
				version = a.Value.Int64()
			}
			return true
		})
		n.mu.Lock()
		if n.versions[client] == nil {
			n.versions[client] = map[string]int64{}
		}
		if v, ok := n.versions[client][api]; !ok || version > v {
			n.versions[client][api] = version
		}
		n.mu.Unlock()
		return nil
	}
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
		for _, a := range h.attrs {
			fmt.Fprintf(&b, " %s", a)
		}
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
		n.mu.Lock()
		n.warnings = append(n.warnings, b.String())
		n.mu.Unlock()
	}
	return nil
}

func (h versionsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return versionsHandler{n: h.n, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h versionsHandler) WithGroup(string) slog.Handler { return h }

// of returns the highest version of each API that client id used.
func (n *negotiatedVersions) of(id string) map[string]int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.versions[id])
}

// report logs the versions client id used, in API key order, and the
// broker's warnings. It fails the test if the client used no API at all
// (the client id did not reach the broker) or if the broker closed a
// connection over a version or encoding it could not handle.
func (n *negotiatedVersions) report(t *testing.T, id string) {
	t.Helper()
	if t.Skipped() {
		return // its peer is missing: no client ran, and that is no failure
	}
	vs := n.of(id)
	if len(vs) == 0 {
		t.Errorf("the broker logged no request from client id %q", id)
	}
	names := make([]string, 0, len(vs))
	for name := range vs {
		names = append(names, name)
	}
	key := func(name string) int16 {
		for k := int16(0); k < 100; k++ {
			if kmsg.NameForKey(k) == name {
				return k
			}
		}
		return 100
	}
	sort.Slice(names, func(i, j int) bool { return key(names[i]) < key(names[j]) })
	var b strings.Builder
	fmt.Fprintf(&b, "API versions %s used (highest seen):", id)
	for _, name := range names {
		fmt.Fprintf(&b, "\n  %-16s v%d", name, vs[name])
	}
	t.Log(b.String())
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, w := range n.warnings {
		t.Logf("broker: %s", w)
		for _, bad := range []string{errVersion.Error(), "malformed", "truncated", errUnknownKey.Error()} {
			if strings.Contains(w, bad) {
				t.Errorf("the broker refused a request: %s", w)
			}
		}
	}
}

// startCompatBroker starts a broker whose log feeds vs, with the group
// coordinator's initial rebalance delay off.
func startCompatBroker(t *testing.T, vs *negotiatedVersions) (*Broker, string) {
	t.Helper()
	dir := t.TempDir()
	b := startBroker(t, dir, fastGroups, func(c *Config) { c.Logger = vs.logger() })
	return b, dir
}

// restartBroker starts a broker over dir listening on addr, the address of
// a broker just closed, retrying the bind for a while in case the port is
// not free yet.
func restartBroker(t *testing.T, dir, addr string, vs *negotiatedVersions) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Logger = addr, dir, vs.logger()
	fastGroups(&cfg)
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := New(cfg)
		if err == nil {
			t.Cleanup(func() { b.Close() })
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart the broker on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// endOffsets lists the end offset of every partition of topic.
func endOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	ends := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends
}

// committedOffsets returns group's committed offset of each partition of
// topic that has one.
func committedOffsets(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch the offsets of group %s: %v", group, err)
	}
	out := map[int32]int64{}
	fetched.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// waitCommittedAtEnd waits until group's committed offset of every
// partition of topic equals its end offset, and fails the test with the
// last difference if that does not happen by deadline.
func waitCommittedAtEnd(t *testing.T, adm *kadm.Client, group, topic string, deadline time.Time) {
	t.Helper()
	ends := endOffsets(t, adm, topic)
	var diff string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		committed, err := adm.FetchOffsets(ctx, group)
		cancel()
		diff = ""
		if err != nil {
			diff = err.Error()
		}
		for p := int32(0); err == nil && p < int32(len(ends)); p++ {
			c, ok := committed.Lookup(topic, p)
			if !ok || c.At != ends[p] {
				diff += fmt.Sprintf(" %s/%d committed %d end %d;", topic, p, c.At, ends[p])
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets did not reach the end offsets:%s", diff)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUntil polls cond until it holds, failing the test with what when the
// deadline passes first.
func waitUntil(t *testing.T, deadline time.Time, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupLedger tracks a consumer group test: which member holds which
// partition (as the client reports it), and which member processed each
// record. While a check window is open (the test opens one once the
// members hold a disjoint assignment of every partition, and closes it
// before it changes the membership), every record must be processed by the
// one member holding its partition and by no other member.
type groupLedger struct {
	mu           sync.Mutex
	partitions   int32
	held         map[string]map[int32]bool // member -> partitions it holds
	processed    map[string][]string       // value -> members that processed it, in order
	processings  int
	window       string              // the open check window; "" when none
	inWindow     map[[2]int64]string // partition, offset -> member, within the window
	violations   []string
	notes        []string   // client errors, for the test log
	restarted    bool       // the broker restarted: keep afterRestart
	afterRestart [][2]int64 // partition, offset of every processing since
	rebalances   atomic.Int64
}

func newGroupLedger(partitions int32) *groupLedger {
	return &groupLedger{
		partitions: partitions,
		held:       map[string]map[int32]bool{},
		processed:  map[string][]string{},
	}
}

// acquire records that member started holding partition p.
func (l *groupLedger) acquire(member string, p int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[member] == nil {
		l.held[member] = map[int32]bool{}
	}
	l.held[member][p] = true
}

// release records that member stopped holding partition p.
func (l *groupLedger) release(member string, p int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held[member], p)
}

// assign replaces what member holds with ps (a client reporting whole
// assignments per generation); nil releases everything.
func (l *groupLedger) assign(member string, ps []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[member] = map[int32]bool{}
	for _, p := range ps {
		l.held[member][p] = true
	}
	l.rebalances.Add(1)
}

// process records that member processed the record at p/offset.
func (l *groupLedger) process(member string, p int32, offset int64, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.processings++
	l.processed[value] = append(l.processed[value], member)
	if l.restarted {
		l.afterRestart = append(l.afterRestart, [2]int64{int64(p), offset})
	}
	if l.window == "" {
		return
	}
	if !l.held[member][p] {
		l.violations = append(l.violations, fmt.Sprintf("%s: %s processed %d/%d without holding partition %d (holds %v)", l.window, member, p, offset, p, l.heldLocked()))
	}
	for other, ps := range l.held {
		if other != member && ps[p] {
			l.violations = append(l.violations, fmt.Sprintf("%s: %s processed %d/%d while %s also held partition %d", l.window, member, p, offset, other, p))
		}
	}
	id := [2]int64{int64(p), offset}
	if prev, ok := l.inWindow[id]; ok && prev != member {
		l.violations = append(l.violations, fmt.Sprintf("%s: %d/%d processed by %s and by %s", l.window, p, offset, prev, member))
	}
	l.inWindow[id] = member
}

func (l *groupLedger) note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.notes) < 50 {
		l.notes = append(l.notes, fmt.Sprintf(format, args...))
	}
}

func (l *groupLedger) heldLocked() map[string][]int32 {
	out := map[string][]int32{}
	for m, ps := range l.held {
		for p := range ps {
			out[m] = append(out[m], p)
		}
		slices.Sort(out[m])
	}
	return out
}

// holds reports whether member holds partition p, as its client last
// reported its assignment.
func (l *groupLedger) holds(member string, p int32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[member][p]
}

// holding reports what each member holds now.
func (l *groupLedger) holding() map[string][]int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked()
}

// openWindowWhen opens check window name as soon as exactly members hold
// disjoint, non-empty sets covering every partition and no other member
// holds anything. It fails the test if that does not happen by deadline.
func (l *groupLedger) openWindowWhen(t *testing.T, deadline time.Time, name string, members ...string) {
	t.Helper()
	waitUntil(t, deadline, name+": "+strings.Join(members, " and ")+" to hold every partition between them", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, m := range members {
			if len(l.held[m]) == 0 {
				return false
			}
		}
		owner := map[int32]string{}
		for m, ps := range l.held {
			want := slices.Contains(members, m)
			if !want && len(ps) > 0 || want && len(ps) == 0 {
				return false
			}
			for p := range ps {
				if _, dup := owner[p]; dup {
					return false
				}
				owner[p] = m
			}
		}
		if int32(len(owner)) != l.partitions {
			return false
		}
		l.window, l.inWindow = name, map[[2]int64]string{}
		return true
	})
	t.Logf("%s: %v", name, l.holding())
}

func (l *groupLedger) closeWindow() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.window, l.inWindow = "", nil
}

// processedAll reports whether every value in want was processed.
func (l *groupLedger) processedAll(want []compatRecord) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range want {
		if len(l.processed[r.value]) == 0 {
			return false
		}
	}
	return true
}

// missing returns up to 10 records of want never processed, and how many.
func (l *groupLedger) missing(want []compatRecord) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	n := 0
	for _, r := range want {
		if len(l.processed[r.value]) == 0 {
			n++
			if len(out) < 10 {
				out = append(out, fmt.Sprintf("%s/%d", r.key, r.seq))
			}
		}
	}
	return out, n
}

// check fails the test for every violation, and logs how many records were
// processed more than once (at-least-once delivery around a rebalance or a
// restart) and the client's errors.
func (l *groupLedger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, v := range l.violations {
		if i == 20 {
			t.Errorf("… and %d more violations", len(l.violations)-i)
			break
		}
		t.Error(v)
	}
	again, byOther := 0, 0
	for _, ms := range l.processed {
		if len(ms) > 1 {
			again++
			for _, m := range ms[1:] {
				if m != ms[0] {
					byOther++
					break
				}
			}
		}
	}
	t.Logf("%d records processed %d times; %d processed more than once (%d of them by another member)", len(l.processed), l.processings, again, byOther)
	for _, n := range l.notes {
		t.Logf("client: %s", n)
	}
}

// runCompatCodecs produces keyed records with each codec of c and reads
// them back with c and with franz-go: all there, content and headers
// intact, each key's records in order on the partition Kafka's murmur2
// picks, each batch stored with the codec it was produced with.
func runCompatCodecs(t *testing.T, c compatClient, addr string) {
	adm := kadm.NewClient(newClient(t, addr))
	codecNumber := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	for _, codec := range c.codecs {
		t.Run(codec, func(t *testing.T) {
			const partitions, n = 3, 600
			topic := c.id + "-" + codec
			createTopic(t, addr, topic, partitions, nil)
			produce := c.producer(t, addr, topic, codec)
			src := newRecordSource(12)
			var want []compatRecord
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for len(want) < n {
				recs := src.take(100)
				if err := produce(ctx, recs); err != nil {
					t.Fatalf("produce with %s: %v", codec, err)
				}
				want = append(want, recs...)
			}
			ends := endOffsets(t, adm, topic)
			total := int64(0)
			for _, e := range ends {
				total += e
			}
			if total != n {
				t.Fatalf("end offsets %v sum to %d, want %d", ends, total, n)
			}
			checkCompatRecords(t, want, c.read(t, addr, topic, ends), partitions)

			for _, r := range consumeN(t, addr, topic, n) {
				if got := r.Attrs.CompressionType(); got != codecNumber[codec] {
					t.Fatalf("%d/%d stored with codec %d, want %d (%s)", r.Partition, r.Offset, got, codecNumber[codec], codec)
				}
			}
		})
	}
}

// checkCompatRecords checks that got holds exactly want: content and
// headers, each key on its murmur2 partition with its seqs in order.
func checkCompatRecords(t *testing.T, want, got []compatRecord, partitions int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	byValue := map[string]bool{}
	for _, r := range want {
		byValue[r.value] = true
	}
	next := map[string]int{}
	for _, r := range got {
		if !byValue[r.value] {
			t.Fatalf("%d/%d: value %q was not produced (or read twice)", r.partition, r.offset, r.value)
		}
		delete(byValue, r.value)
		key, seq, ok := parseCompatValue(r.value)
		if !ok || key != r.key {
			t.Fatalf("%d/%d: key %q, value %q", r.partition, r.offset, r.key, r.value)
		}
		if seq != next[key] {
			t.Fatalf("%d/%d: key %s seq %d, want %d (per-key order)", r.partition, r.offset, key, seq, next[key])
		}
		next[key]++
		if p := kafkaPartition(key, partitions); r.partition != p {
			t.Fatalf("key %s on partition %d; Kafka's murmur2 picks %d", key, r.partition, p)
		}
		if ct := r.headers["content-type"]; ct != compatContentType || len(r.headers) != 1 {
			t.Fatalf("%d/%d: headers %v", r.partition, r.offset, r.headers)
		}
	}
}

// runCompatGroup runs two members of one group over 6 partitions: A alone,
// then B joins (the partitions split without overlap), then B leaves (A
// takes all back). The records of the second and third phase are produced
// only once that phase's assignment is in place, so they are processed
// under the assignment being checked. Every record is processed and
// committed offsets reach the end offsets.
func runCompatGroup(t *testing.T, c compatClient, addr, topic, group string) {
	const partitions, wave = 6, 300
	createTopic(t, addr, topic, partitions, nil)
	adm := kadm.NewClient(newClient(t, addr))
	produce := c.producer(t, addr, topic, "none")
	src := newRecordSource(24)
	l := newGroupLedger(partitions)
	deadline := time.Now().Add(45 * time.Second)
	var want []compatRecord
	produceWave := func() {
		t.Helper()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		recs := src.take(wave)
		if err := produce(ctx, recs); err != nil {
			t.Fatalf("produce: %v", err)
		}
		want = append(want, recs...)
	}
	defer l.check(t)
	allProcessed := func() bool { return l.processedAll(want) }

	produceWave()
	leaveA := c.member(t, addr, topic, group, "A", l)
	defer func() { leaveA() }()
	l.openWindowWhen(t, deadline, "A alone", "A")
	waitUntil(t, deadline, "A to process the first records", allProcessed)
	l.closeWindow()

	leaveB := c.member(t, addr, topic, group, "B", l)
	l.openWindowWhen(t, deadline, "A and B", "A", "B")
	produceWave()
	waitUntil(t, deadline, "A and B to process every record", allProcessed)
	l.closeWindow()

	leaveB()
	l.openWindowWhen(t, deadline, "A after B left", "A")
	produceWave()
	waitUntil(t, deadline, "A to process every record", allProcessed)
	waitCommittedAtEnd(t, adm, group, topic, deadline)
	l.closeWindow()
}

// runCompatRestart consumes with two group members while a producer
// produces, closes the broker mid-stream and starts a new one on the same
// data dir and address. Every acknowledged record is processed and
// committed offsets reach the end offsets; with an idempotent producer the
// log holds each record once, in per-key order.
func runCompatRestart(t *testing.T, c compatClient, vs *negotiatedVersions, b *Broker, dir, topic, group string) {
	const partitions = 4
	addr := b.Addr().String()
	createTopic(t, addr, topic, partitions, nil)
	adm := kadm.NewClient(newClient(t, addr))
	produce := c.producer(t, addr, topic, "lz4")
	l := newGroupLedger(partitions)
	defer l.check(t)
	deadline := time.Now().Add(50 * time.Second)

	var (
		mu       sync.Mutex
		acked    []compatRecord
		failures []string
	)
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	ctx, stop := context.WithCancel(context.Background())
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		src := newRecordSource(16)
		for ctx.Err() == nil {
			recs := src.take(20)
			pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := produce(pctx, recs)
			cancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, recs...)
			} else if len(failures) < 20 {
				failures = append(failures, err.Error())
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() { stop(); <-produced }()

	leaveA := c.member(t, addr, topic, group, "A", l)
	defer func() { leaveA() }()
	leaveB := c.member(t, addr, topic, group, "B", l)
	defer func() { leaveB() }()
	processed := func() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.processed) }
	waitUntil(t, deadline, "A and B to hold partitions", func() bool {
		h := l.holding()
		return len(h["A"]) > 0 && len(h["B"]) > 0
	})
	mark := processed()
	waitUntil(t, deadline, "A and B to process 200 more records", func() bool { return processed() >= mark+200 })
	var committed map[int32]int64
	waitUntil(t, deadline, "commits of 100 records", func() bool {
		committed = committedOffsets(t, adm, group, topic)
		sum := int64(0)
		for _, o := range committed {
			sum += o
		}
		return sum >= 100
	})

	// From here on, a record below these committed offsets must not be
	// processed again: the group resumes from them after the restart.
	// Members commit after processing, so every record below them was
	// processed before they were read; the flag goes up only then, or a
	// record processed (once) while the commits were being read would
	// count as processed again.
	committed = committedOffsets(t, adm, group, topic)
	l.mu.Lock()
	l.restarted = true
	l.mu.Unlock()
	before := ackedCount()
	if err := b.Close(); err != nil {
		t.Fatalf("close the broker: %v", err)
	}
	b2 := restartBroker(t, dir, addr, vs)
	t.Logf("restarted the broker on %s with %d records acknowledged, %d processed, committed %v", b2.Addr(), before, processed(), committed)
	waitUntil(t, deadline, "300 more records acknowledged after the restart", func() bool { return ackedCount() >= before+300 })
	stop()
	<-produced

	mu.Lock()
	all := slices.Clone(acked)
	for _, f := range failures {
		t.Logf("produce failed (records not acknowledged): %s", f)
	}
	mu.Unlock()
	for !l.processedAll(all) {
		if time.Now().After(deadline) {
			miss, n := l.missing(all)
			t.Fatalf("%d of %d acknowledged records never processed, e.g. %v; members hold %v", n, len(all), miss, l.holding())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The commits get their own bound: a member that processed records
	// under a generation that ended had its commits refused (kafka-go
	// ignores OffsetCommit's error codes), and the group's next owner of
	// those partitions commits them only after the coordinator has
	// removed the stale member (its rebalance timeout, 10 s) and the owner
	// has read them again, which under load can outlast what remains of
	// the scenario's deadline.
	waitCommittedAtEnd(t, adm, group, topic, time.Now().Add(45*time.Second))
	l.mu.Lock()
	again := 0
	for _, id := range l.afterRestart {
		if id[1] < committed[int32(id[0])] {
			if again++; again <= 10 {
				t.Errorf("%d/%d was committed before the restart and processed again after it", id[0], id[1])
			}
		}
	}
	l.mu.Unlock()

	// The log itself: every acknowledged record once; with idempotence,
	// nothing twice and each key in order.
	ends := endOffsets(t, adm, topic)
	total := int64(0)
	for _, e := range ends {
		total += e
	}
	stored := map[string]int{}
	last := map[string]int{}
	dups, reordered := 0, 0
	for _, r := range consumeN(t, addr, topic, int(total)) {
		key, seq, ok := parseCompatValue(string(r.Value))
		if !ok {
			t.Fatalf("%d/%d: value %q", r.Partition, r.Offset, r.Value)
		}
		if stored[string(r.Value)]++; stored[string(r.Value)] > 1 {
			dups++
		}
		if prev, seen := last[key]; seen && seq <= prev {
			reordered++
		}
		last[key] = seq
	}
	for _, r := range all {
		if stored[r.value] == 0 {
			t.Fatalf("acknowledged record %s/%d is not in the log", r.key, r.seq)
		}
	}
	t.Logf("%d records acknowledged, %d stored (%d stored twice, %d out of per-key order)", len(all), total, dups, reordered)
	if c.idempotent && (dups > 0 || reordered > 0) {
		t.Errorf("idempotent producer: %d records stored twice, %d out of per-key order", dups, reordered)
	}
}
