// Package kafkatest runs Apache Kafka for tests: a KRaft cluster of one
// node or of three, each node both controller and broker or, as production
// clusters run, brokers beside dedicated controllers, started as java
// child processes on 127.0.0.1 ports chosen free, with its storage
// formatted in a temporary folder. The test can kill (SIGKILL), stop
// (SIGTERM, a controlled shutdown) and restart any node; when it ends every
// node is killed and its folder deleted.
//
// The jars are Apache Kafka 4.1.1's, fetched by .ci/run into
// .peers/kafka/libs (peers.KafkaFetch names the command). Without java or
// the jars the test skips, or fails under FACTORYWIRE_REQUIRE_PEERS=1.
//
//	c := kafkatest.Start(t, kafkatest.Options{Nodes: 3})
//	cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
//	...
//	c.Kill(2)    // SIGKILL node 2
//	c.Restart(2) // start it again; returns once the cluster lists it
//
// A package whose tests can share one single-node cluster calls Shared,
// and Main from its TestMain, instead of paying a JVM start per test.
//
// A program that is not a test (cmd/brokerbench) finds java and the jars
// with FindInstall, starts a cluster with Run and stops it with Close.
//
// The nodes are tuned for tests on two cores: small heaps, few threads, a
// fenced broker detected in seconds (broker.session.timeout.ms 4 s), no
// initial rebalance delay, internal topics with few partitions and a
// replication factor of min(3, nodes). Options.Props overrides any of it.
package kafkatest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/peers"
)

// Timeouts of the cluster's lifecycle. A JVM start takes a few seconds on
// an idle machine and much longer on two cores busy with the rest of the
// suite.
const (
	startTimeout = 3 * time.Minute  // until every node is listed as a broker
	stopTimeout  = 90 * time.Second // a controlled shutdown, before SIGKILL
)

// Options shape a cluster. The zero value is one node with the defaults.
type Options struct {
	// Nodes is the number of brokers, ids 1 to Nodes: 1 (default) or 3.
	Nodes int
	// Controllers is the number of dedicated controller-only nodes, ids
	// 101 onwards. 0 (default) makes every broker a controller too, so
	// that with three nodes the quorum survives one node down but not
	// two: with two of three combined nodes down no leader moves and no
	// producer id is handed out. A test that takes two brokers down sets
	// Controllers to 1.
	Controllers int
	// Heap is the JVM's -Xmx of each node. Default 512m.
	Heap string
	// InitialHeap is the JVM's -Xms of each node. Default 64m.
	InitialHeap string
	// JVMFlags replace the default flags (serial GC and the C1 compiler
	// only, which start fastest and use least CPU on two cores). A
	// benchmark passes none-of-these by setting JVMFlags to []string{}.
	JVMFlags []string
	// Listeners are extra listeners beside PLAINTEXT (the clients' and
	// the brokers' own) and CONTROLLER, by name, such as
	// {"SECURE": "SASL_SSL"}. Their settings go in Props under
	// listener.name.<lower-case name>.…; ListenerAddrs gives their
	// addresses.
	Listeners map[string]string
	// Props are server.properties entries set on every node, over the
	// defaults.
	Props map[string]string
}

// Cluster is a running Apache Kafka cluster. Its methods are for the test
// goroutine (Kill, Stop and Restart are not safe to call concurrently for
// the same node).
type Cluster struct {
	tb        testing.TB
	java      string
	libs      string
	dir       string
	clusterID string
	opts      Options
	nodes     []*node

	mu      sync.Mutex
	stopped bool
}

type node struct {
	id         int32
	broker     bool // process.roles has broker
	controller bool // process.roles has controller
	dir        string
	props      string
	ports      map[string]int // listener name → port
	cmd        *exec.Cmd
	exited     chan struct{} // closed when cmd has exited
	exitError  error         // cmd.Wait's result, once exited is closed
}

// Start formats and starts a cluster and returns once every node is
// listed as a broker by Metadata. Its nodes are killed and its folder
// removed when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := start(t, t.TempDir(), opts)
	if c != nil {
		t.Cleanup(func() { c.close(t.Failed()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(tb testing.TB, dir string, opts Options) (*Cluster, error) {
	libs, java := peers.KafkaLibs(tb)
	c, err := launchCluster(context.Background(), Install{Java: java, Libs: libs}, dir, opts)
	if c != nil {
		c.tb = tb
	}
	return c, err
}

// launchCluster formats and starts a cluster in dir with inst's java and
// jars and returns once every node is listed as a broker, within
// startTimeout and ctx. On an error after the first node started it
// returns the cluster too, for its caller to close.
func launchCluster(ctx context.Context, inst Install, dir string, opts Options) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Nodes != 1 && opts.Nodes != 3 {
		return nil, fmt.Errorf("kafkatest: Options.Nodes is %d; want 1 or 3", opts.Nodes)
	}
	if opts.Controllers < 0 || opts.Controllers > 3 {
		return nil, fmt.Errorf("kafkatest: Options.Controllers is %d; want 0 to 3", opts.Controllers)
	}
	if opts.Heap == "" {
		opts.Heap = "512m"
	}
	if opts.InitialHeap == "" {
		opts.InitialHeap = "64m"
	}
	if opts.JVMFlags == nil {
		opts.JVMFlags = []string{"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m", "-XX:-UsePerfData"}
	}
	c := &Cluster{java: inst.Java, libs: inst.Libs, dir: dir, clusterID: newClusterID(), opts: opts}
	brokerListeners := append([]string{"PLAINTEXT"}, slices.Sorted(maps.Keys(opts.Listeners))...)
	var ids []int32
	for i := range opts.Nodes {
		ids = append(ids, int32(i+1))
	}
	for i := range opts.Controllers {
		ids = append(ids, int32(101+i))
	}
	for _, id := range ids {
		n := &node{id: id, dir: filepath.Join(dir, fmt.Sprintf("node-%d", id)), ports: map[string]int{}}
		n.broker = id < 100
		n.controller = !n.broker || opts.Controllers == 0
		var names []string
		if n.broker {
			names = append(names, brokerListeners...)
		}
		if n.controller {
			names = append(names, "CONTROLLER")
		}
		for _, name := range names {
			n.ports[name] = 0 // picked below, for the whole cluster at once
		}
		n.props = filepath.Join(n.dir, "server.properties")
		c.nodes = append(c.nodes, n)
	}
	if err := c.pickPorts(); err != nil {
		return nil, err
	}
	if err := writeLog4j(dir); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if err := c.writeProps(n); err != nil {
			return nil, err
		}
	}
	if err := c.format(); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if err := c.launch(n); err != nil {
			return c, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.waitBrokers(ctx, c.ids()); err != nil {
		return c, err
	}
	return c, nil
}

// Brokers are the PLAINTEXT addresses of every broker, running or not: a
// client's seed brokers.
func (c *Cluster) Brokers() []string { return c.ListenerAddrs("PLAINTEXT") }

// ListenerAddrs are the addresses of the named listener on every broker.
func (c *Cluster) ListenerAddrs(name string) []string {
	var addrs []string
	for _, n := range c.nodes {
		if n.broker {
			addrs = append(addrs, n.addr(name))
		}
	}
	return addrs
}

// Addr is the PLAINTEXT address of node id.
func (c *Cluster) Addr(id int32) string { return c.node(id).addr("PLAINTEXT") }

// NodeIDs are the brokers' ids, 1 to Options.Nodes.
func (c *Cluster) NodeIDs() []int32 { return c.ids() }

// Running reports whether node id's process is running.
func (c *Cluster) Running(id int32) bool {
	n := c.node(id)
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Kill SIGKILLs node id and waits for its process to exit.
func (c *Cluster) Kill(id int32) {
	c.tb.Helper()
	n := c.node(id)
	if !c.Running(id) {
		c.tb.Fatalf("kafkatest: kill node %d: it is not running", id)
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// Stop shuts node id down as an operator would (SIGTERM: a controlled
// shutdown, which moves its leaderships away first) and waits for it to
// exit; past a bound it kills it and fails the test.
func (c *Cluster) Stop(id int32) {
	c.tb.Helper()
	n := c.node(id)
	if !c.Running(id) {
		c.tb.Fatalf("kafkatest: stop node %d: it is not running", id)
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(stopTimeout):
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
		c.tb.Fatalf("kafkatest: node %d did not stop within %v of SIGTERM; killed it\n%s", id, stopTimeout, c.logTail(n, 30))
	}
}

// Restart starts node id again, on the same ports and storage, and returns
// once Metadata lists it as a broker.
func (c *Cluster) Restart(id int32) {
	c.tb.Helper()
	n := c.node(id)
	if c.Running(id) {
		c.tb.Fatalf("kafkatest: restart node %d: it is still running", id)
	}
	if err := c.launch(n); err != nil {
		c.tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.waitBrokers(ctx, []int32{id}); err != nil {
		c.tb.Fatal(err)
	}
}

// Leader is the node leading partition p of topic, as Metadata says now.
func (c *Cluster) Leader(ctx context.Context, topic string, p int32) (int32, error) {
	pd, err := c.partition(ctx, topic, p)
	if err == nil && pd.Leader < 0 {
		err = fmt.Errorf("kafkatest: %s partition %d has no leader", topic, p)
	}
	return pd.Leader, err
}

// ISR is the in-sync replicas of partition p of topic, as Metadata says
// now.
func (c *Cluster) ISR(ctx context.Context, topic string, p int32) ([]int32, error) {
	pd, err := c.partition(ctx, topic, p)
	return pd.ISR, err
}

// partition asks a running node for the metadata of partition p of topic.
// The request goes straight to a broker: kadm's metadata calls answer from
// the client's cache, which can be minutes old.
func (c *Cluster) partition(ctx context.Context, topic string, p int32) (kmsg.MetadataResponseTopicPartition, error) {
	var none kmsg.MetadataResponseTopicPartition
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.runningAddrs()...))
	if err != nil {
		return none, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return none, err
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return none, fmt.Errorf("kafkatest: metadata of %s: %w", topic, err)
		}
		for _, pd := range t.Partitions {
			if pd.Partition != p {
				continue
			}
			if err := kerr.ErrorForCode(pd.ErrorCode); err != nil {
				return none, fmt.Errorf("kafkatest: metadata of %s partition %d: %w", topic, p, err)
			}
			return pd, nil
		}
	}
	return none, fmt.Errorf("kafkatest: metadata lists no partition %d of %s", p, topic)
}

// LogPath is the path of node id's server log, for a test that reports it.
func (c *Cluster) LogPath(id int32) string { return filepath.Join(c.node(id).dir, "server.log") }

func (c *Cluster) node(id int32) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	if c.tb == nil { // a cluster from Run
		panic(fmt.Sprintf("kafkatest: no node %d in this cluster", id))
	}
	c.tb.Fatalf("kafkatest: no node %d in this cluster", id)
	return nil
}

// ids are the brokers' ids.
func (c *Cluster) ids() []int32 {
	var ids []int32
	for _, n := range c.nodes {
		if n.broker {
			ids = append(ids, n.id)
		}
	}
	return ids
}

func (c *Cluster) runningAddrs() []string {
	var addrs []string
	for _, n := range c.nodes {
		if n.broker && c.Running(n.id) {
			addrs = append(addrs, n.addr("PLAINTEXT"))
		}
	}
	if len(addrs) == 0 {
		return c.Brokers()
	}
	return addrs
}

// logDir is node n's log.dirs, unless Options.Props sets it.
func (n *node) logDir() string { return filepath.Join(n.dir, "data") }

func (n *node) addr(listener string) string {
	p, ok := n.ports[listener]
	if !ok {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// writeProps writes node n's server.properties: the defaults, then
// Options.Props.
func (c *Cluster) writeProps(n *node) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	rf := strconv.Itoa(min(3, c.opts.Nodes))
	minISR := strconv.Itoa(min(2, c.opts.Nodes))
	var voters, listeners, advertised, roles []string
	for _, m := range c.nodes {
		if m.controller {
			voters = append(voters, fmt.Sprintf("%d@%s", m.id, m.addr("CONTROLLER")))
		}
	}
	protocols := []string{"PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"}
	for _, name := range slices.Sorted(maps.Keys(c.opts.Listeners)) {
		protocols = append(protocols, name+":"+c.opts.Listeners[name])
	}
	for _, name := range slices.Sorted(maps.Keys(n.ports)) {
		listeners = append(listeners, fmt.Sprintf("%s://%s", name, n.addr(name)))
		if name != "CONTROLLER" {
			advertised = append(advertised, fmt.Sprintf("%s://%s", name, n.addr(name)))
		}
	}
	if n.broker {
		roles = append(roles, "broker")
	}
	if n.controller {
		roles = append(roles, "controller")
	}
	props := map[string]string{
		"process.roles":                    strings.Join(roles, ","),
		"node.id":                          strconv.Itoa(int(n.id)),
		"controller.quorum.voters":         strings.Join(voters, ","),
		"controller.listener.names":        "CONTROLLER",
		"listeners":                        strings.Join(listeners, ","),
		"listener.security.protocol.map":   strings.Join(protocols, ","),
		"log.dirs":                         n.logDir(),
		"num.network.threads":              "2",
		"num.io.threads":                   "2",
		"num.replica.fetchers":             "1",
		"background.threads":               "2",
		"log.cleaner.threads":              "1",
		"log.cleaner.dedupe.buffer.size":   strconv.Itoa(4 << 20),
		"group.initial.rebalance.delay.ms": "0",
		"offsets.topic.num.partitions":     "5",
		"offsets.topic.replication.factor": rf,
		// Internal topics of features the tests do not use, kept small.
		"transaction.state.log.num.partitions":             "3",
		"transaction.state.log.replication.factor":         rf,
		"transaction.state.log.min.isr":                    minISR,
		"share.coordinator.state.topic.num.partitions":     "3",
		"share.coordinator.state.topic.replication.factor": rf,
		"share.coordinator.state.topic.min.isr":            minISR,
		// A killed broker is fenced, and its partitions led elsewhere,
		// within seconds rather than Kafka's default 9 s.
		"broker.session.timeout.ms":    "4000",
		"broker.heartbeat.interval.ms": "500",
	}
	if n.broker {
		props["inter.broker.listener.name"] = "PLAINTEXT"
		props["advertised.listeners"] = strings.Join(advertised, ",")
	}
	maps.Copy(props, c.opts.Props)
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(props)) {
		fmt.Fprintf(&b, "%s=%s\n", k, escapeProp(props[k]))
	}
	return os.WriteFile(n.props, []byte(b.String()), 0o644)
}

// escapeProp escapes a value for a Java properties file: backslashes
// (Windows paths never occur here, but JAAS configs quote) and line breaks.
func escapeProp(v string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(v)
}

// writeLog4j writes the log4j2 configuration every node uses: INFO to
// server.log in the node's folder (the working directory of its process).
func writeLog4j(dir string) error {
	const cfg = `status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = WARN
`
	return os.WriteFile(filepath.Join(dir, "log4j2.properties"), []byte(cfg), 0o644)
}

func (c *Cluster) classpath() string { return filepath.Join(c.libs, "*") }

// format runs Kafka's storage tool on every node, concurrently.
func (c *Cluster) format() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() {
			cmd := exec.Command(c.java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
				"-Dlog4j2.configurationFile="+filepath.Join(c.dir, "log4j2.properties"),
				"-cp", c.classpath(), "kafka.tools.StorageTool", "format",
				"--cluster-id", c.clusterID, "--config", n.props)
			cmd.Dir = n.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("kafkatest: format node %d: %v\n%s", n.id, err, out)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// launch starts node n's process.
func (c *Cluster) launch(n *node) error {
	args := []string{"-Xms" + c.opts.InitialHeap, "-Xmx" + c.opts.Heap}
	args = append(args, c.opts.JVMFlags...)
	args = append(args,
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+filepath.Join(c.dir, "log4j2.properties"),
		"-cp", c.classpath(), "kafka.Kafka", n.props)
	cmd := exec.Command(c.java, args...)
	cmd.Dir = n.dir
	out, err := os.OpenFile(filepath.Join(n.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	// The JVM dies with the test binary, even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("kafkatest: start node %d: %w", n.id, err)
	}
	n.cmd, n.exited, n.exitError = cmd, make(chan struct{}), nil
	go func() {
		n.exitError = cmd.Wait()
		out.Close()
		close(n.exited)
	}()
	return nil
}

// waitBrokers returns once Metadata lists every node in ids as a broker,
// or fails early, with the node's log, if one of their processes exits.
// Its requests go straight to a broker, not through kadm's cache.
func (c *Cluster) waitBrokers(ctx context.Context, ids []int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	var last error
	for {
		for _, id := range ids {
			if !c.Running(id) {
				n := c.node(id)
				return fmt.Errorf("kafkatest: node %d exited while starting (%v)\n%s", id, n.exitError, c.logTail(n, 40))
			}
		}
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		md, err := kmsg.NewPtrMetadataRequest().RequestWith(actx, cl)
		cancel()
		if err == nil {
			listed := map[int32]bool{}
			for _, b := range md.Brokers {
				listed[b.NodeID] = true
			}
			missing := slices.DeleteFunc(slices.Clone(ids), func(id int32) bool { return listed[id] })
			if len(missing) == 0 {
				return nil
			}
			last = fmt.Errorf("brokers %v not listed yet", missing)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			var tails strings.Builder
			for _, id := range ids {
				tails.WriteString(c.logTail(c.node(id), 20))
			}
			return fmt.Errorf("kafkatest: nodes %v not up within %v: %v\n%s", ids, startTimeout, last, tails.String())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// logTail is the last lines of node n's server log and standard output,
// for a failure message.
func (c *Cluster) logTail(n *node, lines int) string {
	var b strings.Builder
	for _, name := range []string{"server.log", "stdout.log"} {
		f, err := os.Open(filepath.Join(n.dir, name))
		if err != nil {
			continue
		}
		var all []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			all = append(all, sc.Text())
		}
		f.Close()
		if len(all) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- node %d %s (last %d lines)\n", n.id, name, min(lines, len(all)))
		for _, l := range all[max(0, len(all)-lines):] {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// close kills every node and waits for them; with failed, it logs the
// tail of each node's log first.
func (c *Cluster) close(failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	for _, n := range c.nodes {
		if failed {
			c.tb.Log(c.logTail(n, 30))
		}
		if n.cmd != nil {
			n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.exited
		}
	}
}

// newClusterID is a random Kafka Uuid in its base64 form; Kafka's own
// never starts with '-', which a command line would take for a flag.
func newClusterID() string {
	for {
		var b [16]byte
		rand.Read(b[:])
		id := base64.RawURLEncoding.EncodeToString(b[:])
		if id[0] != '-' {
			return id
		}
	}
}

// pickPorts gives every listener of every node a port on 127.0.0.1 that
// nothing listened on a moment ago. The probe listeners stay open until
// all ports are picked, so the system cannot hand one port out twice (a
// node whose CONTROLLER and PLAINTEXT listeners got the same port failed
// to start).
func (c *Cluster) pickPorts() error {
	var probes []net.Listener
	defer func() {
		for _, ln := range probes {
			ln.Close()
		}
	}()
	for _, n := range c.nodes {
		for _, name := range slices.Sorted(maps.Keys(n.ports)) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("kafkatest: pick a port: %w", err)
			}
			probes = append(probes, ln)
			n.ports[name] = ln.Addr().(*net.TCPAddr).Port
		}
	}
	return nil
}
