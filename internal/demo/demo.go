// Package demo runs the whole factorywire pipeline in one process: our
// broker (or an existing Kafka cluster), simulated factories, one gateway
// per factory, and the sink writing into MongoDB (a real server at a URI,
// or the embedded FerretDB stand-in). cmd/demo is its command line; the
// end-to-end tests drive it too.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/devices/simulator"
	"github.com/factorywire/factorywire/gateway"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/standin"
	"github.com/factorywire/factorywire/sink"
	"github.com/factorywire/factorywire/topics"
)

// Config is a demo topology.
type Config struct {
	// DataDir holds the broker's logs, the gateways' spools and the
	// stand-in's files. Empty: a temporary directory removed by Close.
	DataDir string
	// ClassesDir holds the register maps. Default "configs/devices".
	ClassesDir string
	// Factories is how many factories are simulated (plant-a, plant-b,
	// …). Default 3, at most 26.
	Factories int
	// Classes are the device classes of every factory. Default press and
	// power-meter.
	Classes []string
	// Devices is how many devices of each class each factory has.
	// Default 20; factories hold at most 247 devices.
	Devices int
	// Interval is every device's poll interval. Default 1s.
	Interval time.Duration
	// Partitions of each samples topic. Default 3.
	Partitions int32
	// BrokerListen is the broker's address. Default 127.0.0.1:0.
	BrokerListen string
	// Kafka, when its Brokers are set, is an existing cluster (Apache
	// Kafka, or any Kafka-compatible one) to use instead of starting our
	// broker: the demo creates its topics there and every component
	// connects with this block (TLS and SASL included).
	Kafka kafkaclient.Config
	// Secure runs a secured plant on our broker: a SASL_SSL listener
	// (SCRAM-SHA-512 over TLS) only, ACLs enforced, and a user per
	// component (see secure.go), the CA, certificates and passwords made
	// in <DataDir>/secure. Not with Kafka.
	Secure bool
	// ReplicationFactor and MinInsyncReplicas of the topics the demo
	// creates on an existing cluster; 0 leaves the cluster's defaults.
	ReplicationFactor int16
	MinInsyncReplicas int
	// MongoURI is where the sink writes. Empty: an embedded FerretDB
	// stand-in (no time-series collections, no TTL; `sink query window
	// --raw` does not run on it).
	MongoURI string
	// Database is the MongoDB database. Default "factorywire".
	Database string
	// GatewayHTTP, if set, is the address each gateway serves /metrics,
	// /healthz, /readyz and /devices on ("127.0.0.1:0": a free port each;
	// GatewayAddrs lists them). Default: none.
	GatewayHTTP string
	// Logger receives every component's logs. Nil discards them.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.ClassesDir == "" {
		c.ClassesDir = "configs/devices"
	}
	if c.Factories == 0 {
		c.Factories = 3
	}
	if len(c.Classes) == 0 {
		c.Classes = []string{"press", "power-meter"}
	}
	if c.Devices == 0 {
		c.Devices = 20
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.BrokerListen == "" {
		c.BrokerListen = "127.0.0.1:0"
	}
	if len(c.Kafka.Brokers) > 0 {
		if c.Secure {
			return errors.New("secure: the secured plant runs on our broker; an existing cluster is secured by its own configuration")
		}
		if err := c.Kafka.Validate(); err != nil {
			return err
		}
	} else if c.ReplicationFactor > 1 || c.MinInsyncReplicas > 1 {
		return fmt.Errorf("replication factor %d, min.insync.replicas %d: our broker is a single node; give an existing cluster's brokers", c.ReplicationFactor, c.MinInsyncReplicas)
	}
	if c.Database == "" {
		c.Database = "factorywire"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Factories < 1 || c.Factories > 26:
		return fmt.Errorf("factories %d: want 1 to 26", c.Factories)
	case c.Devices < 1 || c.Devices*len(c.Classes) > 247:
		return fmt.Errorf("devices %d per class × %d classes: want 1 to 247 devices per factory (one simulator's unit ids)", c.Devices, len(c.Classes))
	case c.Interval < modbus.MinInterval:
		return fmt.Errorf("interval %s: at least %s", c.Interval, modbus.MinInterval)
	}
	return nil
}

// Demo is a running pipeline. Start it with Start; Close stops it.
type Demo struct {
	cfg      Config
	log      *slog.Logger
	tmpDir   string
	broker   *broker.Broker
	brokerMu sync.Mutex
	stopDB   func()
	mongoURI string
	secure   *securePlant // nil unless Config.Secure
	sims     []*simulator.Server
	gateways []*gateway.Gateway
	sink     *sink.Sink
	Topics   []string // the samples topics
	// Devices maps each factory to its device ids, each to its class.
	Devices map[string]map[string]string

	gwCancel, sinkCancel context.CancelFunc
	gwDone, sinkDone     chan error
	closeOnce            sync.Once
}

// Factory names the i-th factory.
func Factory(i int) string { return "plant-" + string(rune('a'+i)) }

// Start starts the broker, the stand-in (without MongoURI), the topics,
// the simulators, the gateways and the sink, and returns once all run.
func Start(cfg Config) (_ *Demo, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	d := &Demo{cfg: cfg, log: cfg.Logger, Devices: map[string]map[string]string{}}
	defer func() {
		if err != nil {
			d.Close() // d, not the nil result: stop what did start
		}
	}()
	if cfg.DataDir == "" {
		if d.tmpDir, err = os.MkdirTemp("", "factorywire-demo-"); err != nil {
			return nil, err
		}
		d.cfg.DataDir = d.tmpDir
	}
	classes, err := devices.LoadDir(cfg.ClassesDir)
	if err != nil {
		return nil, fmt.Errorf("register maps: %w (run from the repository's root, or give the directory of configs/devices)", err)
	}
	for _, c := range cfg.Classes {
		if classes[c] == nil {
			return nil, fmt.Errorf("class %q: no register map in %s", c, cfg.ClassesDir)
		}
	}
	if cfg.Secure {
		if err := d.setUpSecure(); err != nil {
			return nil, err
		}
	}
	if !d.External() {
		if d.broker, err = d.startBroker(cfg.BrokerListen); err != nil {
			return nil, err
		}
	}
	if err := d.createTopics(); err != nil {
		return nil, err
	}
	if d.secure != nil {
		if err := d.grantPlant(); err != nil {
			return nil, err
		}
	}
	d.mongoURI = cfg.MongoURI
	if d.mongoURI == "" {
		if d.mongoURI, d.stopDB, err = startStandIn(filepath.Join(d.cfg.DataDir, "ferretdb"), d.log); err != nil {
			return nil, err
		}
	}
	for i := 0; i < cfg.Factories; i++ {
		g, err := d.startFactory(Factory(i), classes)
		if err != nil {
			return nil, err
		}
		d.gateways = append(d.gateways, g)
	}
	if d.sink, err = sink.New(d.sinkConfig(), d.log.With("component", "sink")); err != nil {
		return nil, err
	}
	gwCtx, gwCancel := context.WithCancel(context.Background())
	d.gwCancel = gwCancel
	d.gwDone = make(chan error, len(d.gateways))
	for _, g := range d.gateways {
		go func() { d.gwDone <- g.Run(gwCtx) }()
	}
	sinkCtx, sinkCancel := context.WithCancel(context.Background())
	d.sinkCancel = sinkCancel
	d.sinkDone = make(chan error, 1)
	go func() { d.sinkDone <- d.sink.Run(sinkCtx) }()
	return d, nil
}

func (d *Demo) startBroker(listen string) (*broker.Broker, error) {
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.DataDir = listen, filepath.Join(d.cfg.DataDir, "broker")
	cfg.Logger = d.log.With("component", "broker")
	if d.secure != nil {
		d.secureBrokerConfig(&cfg, listen)
	}
	return broker.New(cfg)
}

// kafka is the connection every component uses: the existing cluster's
// block, or our broker's address (as its admin in a secured plant; the
// gateways and the sink connect as their own users there).
func (d *Demo) kafka() kafkaclient.Config {
	if d.External() {
		return d.cfg.Kafka
	}
	if d.secure != nil {
		return d.kafkaAs(adminUser)
	}
	return kafkaclient.Config{Brokers: []string{d.BrokerAddr()}}
}

// administer runs fn with an admin client of the cluster, connected as
// every component is (as the admin in a secured plant), for at most a
// minute.
func (d *Demo) administer(fn func(context.Context, *topics.Admin) error) error {
	opts, err := d.kafka().Opts(d.log)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return fn(ctx, topics.NewAdmin(cl))
}

func (d *Demo) createTopics() error {
	return d.administer(func(ctx context.Context, adm *topics.Admin) error {
		for i := 0; i < d.cfg.Factories; i++ {
			spec := topics.FactorySpec{
				Factory: Factory(i), Classes: d.cfg.Classes, Partitions: d.cfg.Partitions, Retention: 24 * time.Hour,
				ReplicationFactor: d.cfg.ReplicationFactor, MinInsyncReplicas: d.cfg.MinInsyncReplicas,
			}
			if _, err := adm.Ensure(ctx, spec); err != nil {
				return fmt.Errorf("create the topics of %s: %w", Factory(i), err)
			}
			for _, c := range d.cfg.Classes {
				d.Topics = append(d.Topics, topics.Name{Factory: Factory(i), Class: c}.String())
			}
		}
		return nil
	})
}

// Line is the production line of every demo device: the name of its
// factory's one Modbus connection, and each device's tag line (stored in
// MongoDB as meta.tags.line).
const Line = "line-1"

// startFactory starts a simulator holding the factory's devices and the
// gateway that polls them.
func (d *Demo) startFactory(factory string, classes map[string]*devices.Class) (*gateway.Gateway, error) {
	sim, err := simulator.New(simulator.Config{Logger: d.log.With("component", "simulator", "factory", factory)})
	if err != nil {
		return nil, err
	}
	d.sims = append(d.sims, sim)
	cfg := gateway.DefaultConfig()
	cfg.Factory = factory
	cfg.DataDir = filepath.Join(d.cfg.DataDir, "gateway-"+factory)
	cfg.ClassesDir = d.cfg.ClassesDir
	cfg.HTTPListen = d.cfg.GatewayHTTP
	cfg.Kafka.Config = d.kafka()
	if d.secure != nil {
		cfg.Kafka.Config = d.kafkaAs(GatewayUser(factory))
	}
	cfg.Connections = []modbus.ConnConfig{{Name: Line, Address: sim.Addr().String()}}
	d.Devices[factory] = map[string]string{}
	unit := uint8(1)
	for _, class := range d.cfg.Classes {
		for i := 1; i <= d.cfg.Devices; i++ {
			id := fmt.Sprintf("%s-%02d", class, i)
			if _, err := sim.AddDevice(unit, simulator.Device{Class: classes[class], Seed: uint64(len(d.sims))<<8 | uint64(unit)}); err != nil {
				return nil, err
			}
			u := unit
			cfg.Devices = append(cfg.Devices, gateway.DeviceConfig{ID: id, Class: class, Connection: Line, Unit: &u,
				Schedule: modbus.Schedule{Interval: d.cfg.Interval}, Tags: map[string]string{"line": Line}})
			d.Devices[factory][id] = class
			unit++
		}
	}
	return gateway.New(cfg, d.log.With("component", "gateway", "factory", factory))
}

func (d *Demo) sinkConfig() sink.Config {
	cfg := sink.DefaultConfig()
	for i := 0; i < d.cfg.Factories; i++ {
		cfg.Factories = append(cfg.Factories, Factory(i))
	}
	cfg.HTTPListen = ""
	cfg.Kafka.Config = d.kafka()
	if d.secure != nil {
		cfg.Kafka.Config = d.kafkaAs(sinkUser)
	}
	cfg.MongoDB.URI = d.mongoURI
	cfg.MongoDB.Database = d.cfg.Database
	cfg.MongoDB.TimeSeries = d.cfg.MongoURI != ""
	return cfg
}

// BrokerAddr is our broker's address or, on an existing cluster, its seed
// brokers joined by commas.
func (d *Demo) BrokerAddr() string {
	if d.External() {
		return strings.Join(d.cfg.Kafka.Brokers, ",")
	}
	d.brokerMu.Lock()
	defer d.brokerMu.Unlock()
	return d.broker.Addr().String()
}

// External reports whether the demo runs on an existing cluster rather
// than on our broker.
func (d *Demo) External() bool { return len(d.cfg.Kafka.Brokers) > 0 }

// GatewayAddrs are the gateways' HTTP addresses, by factory, when
// Config.GatewayHTTP is set.
func (d *Demo) GatewayAddrs() map[string]string {
	out := map[string]string{}
	for i, g := range d.gateways {
		if a := g.Addr(); a != nil {
			out[Factory(i)] = a.String()
		}
	}
	return out
}

// Gatherers are the Prometheus registries of the demo's components, by
// name: "broker" (ours only), "gateway <factory>" and "sink", as each
// serves them on /metrics (the broker serves the Go and process metrics
// beside its registry; the others hold them in theirs).
func (d *Demo) Gatherers() map[string]prometheus.Gatherer {
	out := map[string]prometheus.Gatherer{}
	if !d.External() {
		d.brokerMu.Lock()
		out["broker"] = d.broker.Registry()
		d.brokerMu.Unlock()
	}
	for i, g := range d.gateways {
		out["gateway "+Factory(i)] = g.Gatherer()
	}
	if d.sink != nil {
		out["sink"] = d.sink.Gatherer()
	}
	return out
}

// MongoURI is where the sink writes.
func (d *Demo) MongoURI() string { return d.mongoURI }

// StandIn reports whether the sink writes to the embedded stand-in.
func (d *Demo) StandIn() bool { return d.cfg.MongoURI == "" }

// Config is the demo's configuration, defaults applied.
func (d *Demo) Config() Config { return d.cfg }

// RestartBroker closes the broker and starts it again on the same address
// and data dir, as an operator restarting it would; gateways spool
// meanwhile and the sink waits.
func (d *Demo) RestartBroker() error {
	if d.External() {
		return errors.New("demo: the cluster is an existing one, not the demo's broker")
	}
	d.brokerMu.Lock()
	defer d.brokerMu.Unlock()
	addr := d.broker.Addr().String()
	if err := d.broker.Close(); err != nil {
		return err
	}
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var b *broker.Broker
		if b, err = d.startBroker(addr); err == nil {
			d.broker = b
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restart the broker on %s: %w", addr, err)
		}
	}
}

// StopPolling stops the gateways, each after it has forwarded its spool
// (up to 5 s), and returns the first error one returned.
func (d *Demo) StopPolling() error {
	if d.gwCancel == nil {
		return nil
	}
	d.gwCancel()
	var err error
	for range d.gateways {
		err = errors.Join(err, <-d.gwDone)
	}
	d.gwCancel = nil
	return err
}

// Close stops the gateways, the sink, the simulators, the stand-in and the
// broker, in that order, and removes a temporary data dir. Idempotent.
func (d *Demo) Close() error {
	var err error
	d.closeOnce.Do(func() {
		err = d.StopPolling()
		if d.sinkCancel != nil {
			d.sinkCancel()
			err = errors.Join(err, <-d.sinkDone)
		}
		for _, s := range d.sims {
			s.Close()
		}
		if d.stopDB != nil {
			d.stopDB()
		}
		if d.broker != nil {
			err = errors.Join(err, d.broker.Close())
		}
		if d.tmpDir != "" {
			err = errors.Join(err, os.RemoveAll(d.tmpDir))
		}
	})
	return err
}

// Stats is what the demo reports every few seconds.
type Stats struct {
	Polled   uint64 // samples the gateways' pollers emitted
	Produced uint64 // samples the broker acknowledged
	Stored   uint64 // samples the sink wrote to MongoDB
	Lag      int64  // records the sink has yet to read, as of its last fetch
	Failed   uint64 // polls without a sample
	// Factories holds each factory's share of Polled and Stored.
	Factories map[string]FactoryStats
	// delay is the sink's poll-to-stored histogram, cumulative buckets
	// in ascending order, the last +Inf: Delays reads it.
	delay []bucket
}

// FactoryStats is one factory's samples: polled by its gateway, stored by
// the sink (its topics').
type FactoryStats struct {
	Polled, Stored uint64
}

// CaughtUp reports whether, for every factory, the sink has stored at
// least as many samples as the factory's gateway had polled at mark: the
// backlog of mark's moment is written, whichever gateway it was waiting
// in. (Lag alone says nothing of a gateway that has not produced yet.)
func (s Stats) CaughtUp(mark Stats) bool {
	for f, m := range mark.Factories {
		if s.Factories[f].Stored < m.Polled {
			return false
		}
	}
	return true
}

type bucket struct {
	upper float64
	count uint64
}

// Delays estimates quantile q of the poll-to-stored latency of the samples
// stored between the Stats prev and s; ok is false when none was.
func (s Stats) Delays(prev Stats, q float64) (d time.Duration, ok bool) {
	if len(s.delay) == 0 {
		return 0, false
	}
	diff := make([]bucket, len(s.delay))
	for i, b := range s.delay {
		diff[i] = b
		if i < len(prev.delay) {
			diff[i].count -= prev.delay[i].count
		}
	}
	if diff[len(diff)-1].count == 0 {
		return 0, false
	}
	return quantile(diff, q), true
}

// Stats collects the counters of every component.
func (d *Demo) Stats() Stats {
	s := Stats{Factories: make(map[string]FactoryStats, len(d.gateways))}
	for i, g := range d.gateways {
		var fs FactoryStats
		for _, h := range g.Health() {
			fs.Polled += h.Samples
			s.Failed += h.Failures
		}
		s.Polled += fs.Polled
		s.Factories[Factory(i)] = fs
		mfs, _ := g.Gatherer().Gather() // a failed gather leaves 0
		s.Produced += uint64(sumMetric(mfs, "factorywire_gateway_produced_samples_total"))
	}
	if d.sink != nil {
		mfs, _ := d.sink.Gatherer().Gather()
		s.Stored = uint64(sumMetric(mfs, "factorywire_sink_samples_stored_total"))
		for f, fs := range s.Factories {
			fs.Stored = uint64(sumMetricTopics(mfs, "factorywire_sink_samples_stored_total", f+"."))
			s.Factories[f] = fs
		}
		s.Lag = int64(sumMetric(mfs, "factorywire_sink_consumer_lag_records"))
		if h := histogram(mfs, "factorywire_sink_sample_delay_seconds"); h != nil {
			// Prometheus gives the buckets in ascending order; +Inf is
			// the sample count.
			for _, b := range h.GetBucket() {
				s.delay = append(s.delay, bucket{b.GetUpperBound(), b.GetCumulativeCount()})
			}
			s.delay = append(s.delay, bucket{math.Inf(1), h.GetSampleCount()})
		}
	}
	return s
}

// sumMetric adds up every series of the counter or gauge name.
func sumMetric(mfs []*dto.MetricFamily, name string) float64 {
	return sumMetricWhere(mfs, name, func(*dto.Metric) bool { return true })
}

// sumMetricTopics adds up the series of the counter name whose topic
// label starts with prefix.
func sumMetricTopics(mfs []*dto.MetricFamily, name, prefix string) float64 {
	return sumMetricWhere(mfs, name, func(m *dto.Metric) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == "topic" {
				return strings.HasPrefix(l.GetValue(), prefix)
			}
		}
		return false
	})
}

// sumMetricWhere adds up the series of the counter or gauge name that
// keep accepts.
func sumMetricWhere(mfs []*dto.MetricFamily, name string, keep func(*dto.Metric) bool) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if keep(m) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func histogram(mfs []*dto.MetricFamily, name string) *dto.Histogram {
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	return nil
}

// quantile estimates quantile q from cumulative buckets (sorted, the last
// +Inf) as Prometheus' histogram_quantile does: linear interpolation inside
// the bucket that holds it.
func quantile(buckets []bucket, q float64) time.Duration {
	total := float64(buckets[len(buckets)-1].count)
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		upper, count := b.upper, float64(b.count)
		if count >= rank {
			if math.IsInf(upper, 1) {
				upper = lower
			}
			frac := 0.0
			if count > below {
				frac = (rank - below) / (count - below)
			}
			return time.Duration((lower + (upper-lower)*frac) * float64(time.Second))
		}
		lower, below = upper, count
	}
	return time.Duration(lower * float64(time.Second))
}

// startStandIn runs the MongoDB stand-in (SQLite in dir) on 127.0.0.1:0
// and returns its URI and a function that stops it.
func startStandIn(dir string, log *slog.Logger) (string, func(), error) {
	// FerretDB logs every command it does not implement as a warning
	// (the driver's endSessions at every disconnect): only at debug level.
	var flog *slog.Logger
	if log.Enabled(context.Background(), slog.LevelDebug) {
		flog = log.With("component", "ferretdb")
	}
	srv, err := standin.Start(standin.Config{Dir: dir, Listen: "127.0.0.1:0", Logger: flog})
	if err != nil {
		return "", nil, err
	}
	stop := func() {
		if err := srv.Close(); err != nil {
			log.Error(err.Error())
		}
	}
	return srv.URI(), stop, nil
}
