package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/factorywire/factorywire/internal/peers"
)

// javaClientID is the client id of every Java client in these tests.
const javaClientID = "compat-java"

// javaPeerSource is the Java program the test compiles and runs (its head
// documents the command and event lines).
const javaPeerSource = "testdata/java/JavaPeer.java"

// javaLog4j is the Java client's log configuration: warnings and errors to
// stderr, which the test shows when it fails. Kafka logs a warning for
// every JMX bean a second client with the same client id cannot register;
// those are left out.
const javaLog4j = `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR">
      <PatternLayout pattern="%d{HH:mm:ss.SSS} %-5level [%t] %c{1}: %msg%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="ERROR"/>
    <Root level="WARN"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
`

// The assignors the group tests give partition.assignment.strategy, and
// the protocol name each joins the group with.
const (
	javaRange             = "org.apache.kafka.clients.consumer.RangeAssignor"
	javaCooperativeSticky = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
)

var javaAssignorProtocol = map[string]string{javaRange: "range", javaCooperativeSticky: "cooperative-sticky"}

// TestJava runs Apache Kafka's Java client, kafka-clients 4.1.1, against
// the broker: Kafka 4's default partitioner against murmur2 as franz-go
// computes it; an idempotent acks=all producer with every codec, read back
// by the Java consumer (and by franz-go); classic-protocol consumer groups
// with the range and the cooperative-sticky assignors committing with
// commitSync, rebalancing as a member joins and leaves (close()); and a
// broker restart while the group consumes and the producer produces. One
// JVM runs every client, fed commands on stdin (testdata/java/JavaPeer.java).
func TestJava(t *testing.T) {
	vs := newNegotiatedVersions()
	b, dir := startCompatBroker(t, vs)
	addr := b.Addr().String()
	defer vs.report(t, javaClientID)
	// After the broker: cleanups run last-first, so the JVM's clients
	// close while the broker still answers.
	j := newJavaPeer(t)

	t.Run("partitioner", func(t *testing.T) {
		defer j.diagOnFailure(t)
		testJavaPartitioner(t, j)
	})
	t.Run("codecs", func(t *testing.T) {
		defer j.diagOnFailure(t)
		runCompatCodecs(t, j.compat(javaRange), addr)
	})
	t.Run("group", func(t *testing.T) {
		for _, tc := range []struct{ name, assignor string }{
			{"range", javaRange},
			{"cooperative-sticky", javaCooperativeSticky},
		} {
			t.Run(tc.name, func(t *testing.T) {
				defer j.diagOnFailure(t)
				name := "java-group-" + tc.name
				runCompatGroup(t, j.compat(tc.assignor), addr, name, name)
			})
		}
	})
	// Last: it replaces the broker.
	t.Run("restart", func(t *testing.T) {
		defer j.diagOnFailure(t)
		runCompatRestart(t, j.compat(javaCooperativeSticky), vs, b, dir, "java-restart", "java-restart")
		if !t.Failed() {
			j.checkTold(t, addr, "java-restart")
		}
	})
}

// newJavaPeer compiles JavaPeer.java against Apache Kafka's jars and starts
// it, or skips (fails under FACTORYWIRE_REQUIRE_PEERS=1) without java, javac
// or the jars.
func newJavaPeer(t *testing.T) *javaPeer {
	t.Helper()
	libs, java := peers.KafkaLibs(t)
	// javac of the JDK java belongs to, else the first on PATH.
	javac := ""
	if real, err := filepath.EvalSymlinks(java); err == nil {
		javac = filepath.Join(filepath.Dir(real), "javac")
	}
	if _, err := os.Stat(javac); err != nil {
		javac = peers.Program(t, "javac", "install a Java 17 JDK (apt-get install openjdk-17-jdk-headless)")
	}
	classes := t.TempDir()
	cp := filepath.Join(libs, "*")
	out, err := exec.Command(javac, "-Xlint:all", "-d", classes, "-cp", cp, javaPeerSource).CombinedOutput()
	if err != nil {
		t.Fatalf("javac %s: %v\n%s", javaPeerSource, err, out)
	}
	if len(out) > 0 {
		t.Logf("javac %s:\n%s", javaPeerSource, out)
	}
	log4j := filepath.Join(classes, "log4j2.xml")
	if err := os.WriteFile(log4j, []byte(javaLog4j), 0o644); err != nil {
		t.Fatal(err)
	}
	return startJavaPeer(t, java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dlog4j2.configurationFile="+log4j, "-cp", classes+string(os.PathListSeparator)+cp, "JavaPeer")
}

// testJavaPartitioner checks that Kafka 4's default partitioning of keyed
// records (partitioner.class unset: BuiltInPartitioner.partitionForKey)
// maps every key as Kafka's murmur2 does, computed by franz-go. The records
// the codecs test produces check the same on the wire.
func testJavaPartitioner(t *testing.T, j *javaPeer) {
	counts := []int{1, 3, 6, 7, 12, 100}
	var keys []string
	for _, v := range murmur2Vectors {
		keys = append(keys, v.key)
	}
	for k := 0; k < 1000; k++ {
		keys = append(keys, "dev-"+strconv.Itoa(k))
	}
	var cmd strings.Builder
	req := j.newRequest()
	strs := make([]string, len(counts))
	for i, n := range counts {
		strs[i] = strconv.Itoa(n)
	}
	fmt.Fprintf(&cmd, "partitions %s %s", req.id, strings.Join(strs, ","))
	for _, k := range keys {
		cmd.WriteString(" " + javaEnc(k))
	}
	lines := j.call(t, req, cmd.String()+"\n", 20*time.Second)
	picked := map[[2]string]int32{} // key, count -> partition
	for _, l := range lines {
		f := strings.Fields(l)
		if f[0] != "parts" || len(f) != 4 {
			continue
		}
		ps := strings.Split(f[3], ",")
		if len(ps) != len(keys) {
			t.Fatalf("%d partitions for %d keys: %s", len(ps), len(keys), l)
		}
		for i, p := range ps {
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				t.Fatalf("partition %q: %v", p, err)
			}
			picked[[2]string{keys[i], f[2]}] = int32(n)
		}
	}
	match, total := partitionerMatch(t, func(key string, n int) int32 {
		p, ok := picked[[2]string{key, strconv.Itoa(n)}]
		if !ok {
			t.Fatalf("the Java client was not asked for key %q over %d partitions", key, n)
		}
		return p
	})
	t.Logf("kafka-clients 4.1.1 default partitioner: %d of %d keys on Kafka's murmur2 partition", match, total)
	if match != total {
		t.Errorf("the Java client's default partitioner maps %d of %d keys as franz-go's murmur2, want all", match, total)
	}
}

// javaPeer is one JavaPeer JVM. A goroutine takes in its stdout lines in
// order: answers to requests, and the events of group members, which go
// to their ledger at once (so a member's rebalance callbacks and
// processing reach the ledger in the order the client made them).
type javaPeer struct {
	proc  *peerProc
	ready chan struct{}
	stop  chan struct{}
	done  chan struct{}

	wmu sync.Mutex // serialises writes to stdin

	mu       sync.Mutex
	parsed   int // stdout lines taken in
	next     int // request and member numbering
	requests map[string]*javaRequest
	members  map[string]*javaMember
	told     map[string]map[string][2]int64 // topic -> record value -> partition, offset the producer was told
	notes    []string                       // client errors not tied to a member
	bad      []string                       // lines that could not be parsed
}

// javaRequest collects the lines answering one request, up to the line
// that ends it (ok, acked, done or failed).
type javaRequest struct {
	id    string
	lines []string
	end   string
	done  chan struct{}
}

// javaMember ties a member in the JVM to its ledger and the name the
// ledger knows it by.
type javaMember struct {
	name string
	l    *groupLedger
	left chan struct{}
}

func startJavaPeer(t *testing.T, java string, args ...string) *javaPeer {
	t.Helper()
	j := &javaPeer{
		proc:     startPeer(t, "JavaPeer", "", java, args...),
		ready:    make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		requests: map[string]*javaRequest{},
		members:  map[string]*javaMember{},
		told:     map[string]map[string][2]int64{},
	}
	go j.run()
	t.Cleanup(func() {
		// stdin closed: members leave, producers close, the JVM exits.
		j.proc.stop(20 * time.Second)
		close(j.stop)
		<-j.done
		j.mu.Lock()
		defer j.mu.Unlock()
		for _, n := range j.notes {
			t.Logf("java: %s", n)
		}
		for _, l := range j.bad {
			t.Errorf("JavaPeer printed an unexpected line: %q", l)
		}
		if errs := j.proc.stderrLines(); len(errs) > 0 {
			t.Logf("the Java client logged %d lines on stderr, first:\n  %s", len(errs), strings.Join(errs[:min(len(errs), 30)], "\n  "))
		}
	})
	select {
	case <-j.ready:
	case <-j.proc.exited:
		t.Fatalf("JavaPeer exited at start%s", j.proc.diag())
	case <-time.After(30 * time.Second):
		t.Fatalf("JavaPeer did not start within 30 s%s", j.proc.diag())
	}
	return j
}

// run takes in new stdout lines every few milliseconds until the JVM has
// exited and every line is taken in, or stop is closed.
func (j *javaPeer) run() {
	defer close(j.done)
	for {
		exited := j.proc.hasExited()
		j.proc.mu.Lock()
		lines := j.proc.out[j.parsed:]
		j.parsed = len(j.proc.out)
		j.proc.mu.Unlock()
		for _, l := range lines {
			j.handle(l)
		}
		if exited && len(lines) == 0 {
			return
		}
		select {
		case <-j.stop:
			return
		case <-time.After(3 * time.Millisecond):
		}
	}
}

func (j *javaPeer) handle(line string) {
	f := strings.Split(line, " ")
	j.mu.Lock()
	defer j.mu.Unlock()
	bad := func() { j.bad = append(j.bad, line) }
	if len(f) < 2 && f[0] != "ready" && f[0] != "exit" {
		bad()
		return
	}
	switch f[0] {
	case "ready":
		close(j.ready)
	case "exit":
	case "ok", "acked", "done", "failed", "rrec", "parts":
		r := j.requests[f[1]]
		if r == nil {
			return // a request the test gave up on
		}
		r.lines = append(r.lines, line)
		if f[0] != "rrec" && f[0] != "parts" {
			r.end = line
			delete(j.requests, f[1])
			close(r.done)
		}
	case "mrec":
		m := j.members[f[1]]
		rec, err := javaRecord(f)
		if err != nil || m == nil {
			bad()
			return
		}
		m.l.process(m.name, rec.partition, rec.offset, rec.value)
	case "assigned", "revoked", "lost":
		m := j.members[f[1]]
		if m == nil || len(f) != 3 {
			bad()
			return
		}
		if f[2] == "-" {
			return
		}
		for _, s := range strings.Split(f[2], ",") {
			p, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				bad()
				return
			}
			if f[0] == "assigned" {
				m.l.acquire(m.name, int32(p))
			} else {
				m.l.release(m.name, int32(p))
			}
		}
		if f[0] == "lost" {
			m.l.note("java %s: partitions %s lost (the group moved on without it)", m.name, f[2])
		}
	case "sync":
		// Everything the member printed before is in its ledger: let it
		// commit. (The reply is written outside j.mu.)
		if len(f) != 3 {
			bad()
			return
		}
		go j.write("synced " + f[1] + " " + f[2] + "\n")
	case "left":
		if m := j.members[f[1]]; m != nil {
			m.l.assign(m.name, nil)
			close(m.left)
			delete(j.members, f[1])
		}
	case "note":
		msg, err := javaDec(f[1])
		if err != nil {
			bad()
			return
		}
		who, _, _ := strings.Cut(msg, " ")
		if m := j.members[strings.TrimSuffix(who, ":")]; m != nil {
			m.l.note("java %s", msg)
		} else if len(j.notes) < 50 {
			j.notes = append(j.notes, msg)
		}
	default:
		bad()
	}
}

// write sends command lines to the JVM; an error means it has exited,
// which the waits notice.
func (j *javaPeer) write(s string) {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	io.WriteString(j.proc.in, s)
}

func (j *javaPeer) newRequest() *javaRequest {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.next++
	r := &javaRequest{id: "r" + strconv.Itoa(j.next), done: make(chan struct{})}
	j.requests[r.id] = r
	return r
}

// wait waits for r's end line; ctx ending or the JVM exiting is an error.
func (j *javaPeer) wait(ctx context.Context, r *javaRequest) ([]string, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		j.mu.Lock()
		delete(j.requests, r.id)
		j.mu.Unlock()
		return nil, fmt.Errorf("java request %s: %w", r.id, ctx.Err())
	case <-j.proc.exited:
		return nil, errors.New("JavaPeer exited")
	}
	if f := strings.Split(r.end, " "); f[0] == "failed" {
		msg, _ := javaDec(f[2])
		return r.lines, fmt.Errorf("java: %s", msg)
	}
	return r.lines, nil
}

// call sends cmd for r and waits up to timeout for its answer, failing the
// test if it does not come or reports a failure.
func (j *javaPeer) call(t *testing.T, r *javaRequest, cmd string, timeout time.Duration) []string {
	t.Helper()
	j.write(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lines, err := j.wait(ctx, r)
	if err != nil {
		t.Fatalf("%s: %v%s", strings.SplitN(cmd, " ", 2)[0], err, j.proc.diag())
	}
	return lines
}

// checkTold reads topic with franz-go and checks that every record the
// Java producer had acknowledged is where its RecordMetadata said: also a
// retry the broker recognised as a duplicate (after a restart) must be
// answered with the offset the batch was first written at.
func (j *javaPeer) checkTold(t *testing.T, addr, topic string) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	total := int64(0)
	for _, e := range endOffsets(t, adm, topic) {
		total += e
	}
	at := map[string][2]int64{}
	for _, r := range consumeN(t, addr, topic, int(total)) {
		at[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	bad := 0
	for v, told := range j.told[topic] {
		if got, ok := at[v]; !ok || got != told {
			if bad++; bad <= 10 {
				t.Errorf("%q: the producer's RecordMetadata said %d/%d; it is at %v (found: %v)", v, told[0], told[1], got, ok)
			}
		}
	}
	t.Logf("%d acknowledged records at the partition and offset the Java producer was told, %d elsewhere", len(j.told[topic])-bad, bad)
}

// diagOnFailure shows the JVM's state and the client's log if t failed.
func (j *javaPeer) diagOnFailure(t *testing.T) {
	if t.Failed() {
		t.Logf("JavaPeer:%s", j.proc.diag())
	}
}

// compat adapts the Java client to the shared scenarios, with assignor as
// the members' partition.assignment.strategy.
func (j *javaPeer) compat(assignor string) compatClient {
	return compatClient{
		id:         javaClientID,
		idempotent: true,
		codecs:     []string{"none", "gzip", "snappy", "lz4", "zstd"},
		producer: func(t *testing.T, addr, topic, codec string) func(context.Context, []compatRecord) error {
			p := j.newRequest()
			j.call(t, p, fmt.Sprintf("producer %s %s %s %s %s\n", p.id, addr, topic, codec, javaClientID), 20*time.Second)
			t.Cleanup(func() { j.write("close " + p.id + "\n") })
			return func(ctx context.Context, recs []compatRecord) error {
				r := j.newRequest()
				var cmd strings.Builder
				for _, rec := range recs {
					fmt.Fprintf(&cmd, "rec %s %s %s %s %s\n", p.id, r.id, javaEnc(rec.key), javaEnc(rec.value), javaHeaders(rec.headers))
				}
				fmt.Fprintf(&cmd, "flush %s %s %d\n", p.id, r.id, len(recs))
				j.write(cmd.String())
				if _, err := j.wait(ctx, r); err != nil {
					return err
				}
				// "acked REQ N P:OFFSET,...": where the producer was told
				// each record went, checked when the records are read.
				f := strings.Split(r.end, " ")
				at := strings.Split(f[len(f)-1], ",")
				if len(f) != 4 || len(at) != len(recs) {
					return fmt.Errorf("java: %d records acknowledged as %q", len(recs), r.end)
				}
				j.mu.Lock()
				defer j.mu.Unlock()
				if j.told[topic] == nil {
					j.told[topic] = map[string][2]int64{}
				}
				for i, s := range at {
					var p int32
					var o int64
					if _, err := fmt.Sscanf(s, "%d:%d", &p, &o); err != nil {
						return fmt.Errorf("java: acknowledged at %q: %v", s, err)
					}
					j.told[topic][recs[i].value] = [2]int64{int64(p), o}
				}
				return nil
			}
		},
		read: func(t *testing.T, addr, topic string, ends map[int32]int64) []compatRecord {
			r := j.newRequest()
			var es []string
			for p := int32(0); p < int32(len(ends)); p++ {
				es = append(es, fmt.Sprintf("%d=%d", p, ends[p]))
			}
			lines := j.call(t, r, fmt.Sprintf("read %s %s %s %s %s\n", r.id, addr, topic, javaClientID, strings.Join(es, ",")), 45*time.Second)
			var out []compatRecord
			for _, l := range lines {
				f := strings.Split(l, " ")
				if f[0] != "rrec" {
					continue
				}
				rec, err := javaRecord(f)
				if err != nil {
					t.Fatalf("%q: %v", l, err)
				}
				j.mu.Lock()
				at, ok := j.told[topic][rec.value]
				j.mu.Unlock()
				// Every record read was produced (and acknowledged) by
				// the Java producer: it is where RecordMetadata said.
				if !ok {
					t.Errorf("read %d/%d = %q, which the Java producer did not acknowledge", rec.partition, rec.offset, rec.value)
				} else if at != [2]int64{int64(rec.partition), rec.offset} {
					t.Errorf("read %q at %d/%d; the producer's RecordMetadata said %d/%d", rec.value, rec.partition, rec.offset, at[0], at[1])
				}
				out = append(out, rec)
			}
			return out
		},
		member: func(t *testing.T, addr, topic, group, name string, l *groupLedger) func() {
			j.mu.Lock()
			j.next++
			id := fmt.Sprintf("m%d-%s", j.next, name)
			m := &javaMember{name: name, l: l, left: make(chan struct{})}
			j.members[id] = m
			j.mu.Unlock()
			r := &javaRequest{id: id, done: make(chan struct{})}
			j.mu.Lock()
			j.requests[id] = r
			j.mu.Unlock()
			j.call(t, r, fmt.Sprintf("member %s %s %s %s %s %s\n", id, addr, topic, group, assignor, javaClientID), 20*time.Second)
			// The group runs the classic protocol with the assignor asked
			// for (the client falls back on none of its own).
			adm := kadm.NewClient(newClient(t, addr))
			var last string
			peerWait(t, 30*time.Second, "group "+group+" to be Stable with protocol "+javaAssignorProtocol[assignor], func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				described, err := adm.DescribeGroups(ctx, group)
				if err != nil {
					last = err.Error()
					return false
				}
				d := described[group]
				last = fmt.Sprintf("state %s, protocol type %q, protocol %q", d.State, d.ProtocolType, d.Protocol)
				return d.Err == nil && d.State == "Stable" && d.ProtocolType == "consumer" && d.Protocol == javaAssignorProtocol[assignor]
			}, func() string { return "\nlast seen: " + last })
			t.Logf("group %s once %s started: %s", group, name, last)
			var once sync.Once
			leave := func() {
				once.Do(func() {
					// The member commits what it processed, then close()
					// revokes its partitions and leaves the group.
					j.write("leave " + id + "\n")
					select {
					case <-m.left:
					case <-j.proc.exited:
					case <-time.After(30 * time.Second):
						l.note("java %s: did not leave within 30 s", name)
					}
				})
			}
			t.Cleanup(leave)
			return leave
		},
	}
}

// javaRecord parses "rrec REQ P OFFSET KEY VALUE HEADERS" (or mrec NAME …).
func javaRecord(f []string) (compatRecord, error) {
	if len(f) != 7 {
		return compatRecord{}, errors.New("want 7 fields")
	}
	p, err := strconv.ParseInt(f[2], 10, 32)
	if err != nil {
		return compatRecord{}, err
	}
	o, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return compatRecord{}, err
	}
	key, err := javaDec(f[4])
	if err != nil {
		return compatRecord{}, err
	}
	value, err := javaDec(f[5])
	if err != nil {
		return compatRecord{}, err
	}
	r := compatRecord{key: key, value: value, partition: int32(p), offset: o, headers: map[string]string{}}
	if f[6] != "-" {
		for _, kv := range strings.Split(f[6], ",") {
			k, v, ok := strings.Cut(kv, ":")
			hk, kerr := javaDec(k)
			hv, verr := javaDec(v)
			if !ok || kerr != nil || verr != nil {
				return compatRecord{}, fmt.Errorf("header %q", kv)
			}
			r.headers[hk] = hv
		}
	}
	return r, nil
}

// javaEnc encodes a string field of JavaPeer's lines.
func javaEnc(s string) string { return "b" + base64.StdEncoding.EncodeToString([]byte(s)) }

// javaDec decodes a string field; null ("-") decodes as "".
func javaDec(f string) (string, error) {
	if f == "-" {
		return "", nil
	}
	if !strings.HasPrefix(f, "b") {
		return "", fmt.Errorf("field %q", f)
	}
	b, err := base64.StdEncoding.DecodeString(f[1:])
	return string(b), err
}

func javaHeaders(hs map[string]string) string {
	if len(hs) == 0 {
		return "-"
	}
	var out []string
	for k, v := range hs {
		out = append(out, javaEnc(k)+":"+javaEnc(v))
	}
	return strings.Join(out, ",")
}
