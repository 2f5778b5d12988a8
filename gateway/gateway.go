package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/internal/kafkaclient"
)

// drainTimeout bounds how long a stopping gateway waits for the forwarder
// to deliver what the spool holds. What is left stays in the spool.
const drainTimeout = 5 * time.Second

// Gateway polls its devices into the spool and forwards the spool to Kafka.
// Build it with New, run it with Run, change its devices and connections
// with Reload; it owns every connection, the spool and the producer, and
// releases them when Run returns.
type Gateway struct {
	cfg    Config // as New got it: the keys Reload cannot change keep these values
	log    *slog.Logger
	spool  *Spool
	poller *modbus.Poller
	// topics is class -> topic for emit, replaced (never changed) by
	// Reload, which only adds classes: a sample of a class a reload
	// removed may still be emitted while the change is applied.
	topics atomic.Pointer[map[string]string]
	// schedules is device id -> schedule for /devices, replaced by Reload.
	schedules atomic.Pointer[map[string]modbus.Schedule]

	// reloadMu serialises Reload, and guards what it changes: applied,
	// classes and conns, and stopped, which Run sets before releasing.
	reloadMu sync.Mutex
	applied  Config                    // cfg with the reloads applied
	classes  map[string]*devices.Class // the register maps of applied's devices
	conns    map[string]*modbus.Conn   // by connection name
	stopped  bool

	client  *kgo.Client
	kafka   *kafkaclient.Monitor
	fwd     *forwarder // set by Run before ready is closed
	reg     *prometheus.Registry
	metrics *metrics
	http    *http.Server
	httpLn  net.Listener
	ready   chan struct{}
}

// Plan describes what a gateway will do: for `gateway check`.
type Plan struct {
	Topics  []string          // the topics it writes
	Classes []*devices.Class  // the classes its devices use, by name
	Devices map[string]string // device id -> topic
	// Exceptions describes, by device id, the report by exception of the
	// devices that have one: "report by exception: max_silence 1m0s,
	// deadband pressure absolute 0.5".
	Exceptions map[string]string

	// plans are the read plans of the devices with their own
	// max_registers_per_read, by device id, for New.
	plans map[string]devices.Plan
}

// Check validates cfg, loads the register maps its devices use, reads the
// kafka block's files and password, and returns what the gateway would
// poll and write, without connecting to anything.
func Check(cfg Config) (Plan, error) {
	if err := cfg.Validate(); err != nil {
		return Plan{}, err
	}
	if _, err := cfg.Kafka.Opts(nil); err != nil {
		return Plan{}, kafkaclient.Rekey(err, func(k string) string { return "kafka." + k })
	}
	classes, err := devices.LoadDir(cfg.ClassesDir)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Devices: map[string]string{}, Exceptions: map[string]string{}, plans: map[string]devices.Plan{}}
	used := map[string]bool{}
	topics := map[string]bool{}
	var errs []error
	for i, d := range cfg.Devices {
		c := classes[d.Class]
		if c == nil {
			errs = append(errs, fmt.Errorf("devices[%d] (%s).class %q: no register map in %s has that class (have %s)", i, d.ID, d.Class, cfg.ClassesDir, strings.Join(sortedKeys(classes), ", ")))
			continue
		}
		if d.MaxRegistersPerRead > 0 {
			plan, err := c.Compile(devices.PlanOptions{MaxRegisters: d.MaxRegistersPerRead})
			if err != nil {
				errs = append(errs, fmt.Errorf("devices[%d] (%s): %w", i, d.ID, err))
			}
			p.plans[d.ID] = plan
		}
		if d.ReportByException != nil {
			errs = append(errs, d.ReportByException.validate(fmt.Sprintf("devices[%d] (%s).report_by_exception", i, d.ID), c)...)
		}
		if !used[c.Name] {
			used[c.Name] = true
			p.Classes = append(p.Classes, c)
		}
		var classRBE *ExceptionConfig
		if e, ok := cfg.ReportByException[d.Class]; ok {
			classRBE = &e
		}
		if f := exceptionFor(classRBE, d.ReportByException); f != nil {
			p.Exceptions[d.ID] = f.String()
		}
		topic := cfg.Topic(c.Name)
		topics[topic] = true
		p.Devices[d.ID] = topic
	}
	for _, name := range sortedKeys(cfg.ReportByException) {
		c := classes[name]
		if c == nil {
			errs = append(errs, fmt.Errorf("report_by_exception.%s: no register map in %s has that class (have %s)", name, cfg.ClassesDir, strings.Join(sortedKeys(classes), ", ")))
			continue
		}
		errs = append(errs, cfg.ReportByException[name].validate("report_by_exception."+name, c)...)
	}
	if err := errors.Join(errs...); err != nil {
		return Plan{}, err
	}
	sort.Slice(p.Classes, func(i, j int) bool { return p.Classes[i].Name < p.Classes[j].Name })
	p.Topics = sortedKeys(topics)
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ConfigError is New's error for a configuration Check refuses: it reads
// as Check's error, and tells a caller's usage error from a failure to
// start.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

// New checks cfg (a *ConfigError if Check refuses it), opens the spool,
// recovers each device's next seq from it, and builds the connections, the
// poller, the producer and the HTTP listener. Nothing is polled or
// produced before Run.
func New(cfg Config, logger *slog.Logger) (*Gateway, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	plan, err := Check(cfg)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	g := &Gateway{cfg: cfg, applied: cfg, log: logger, reg: prometheus.NewRegistry(), ready: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			g.release()
		}
	}()
	g.classes = make(map[string]*devices.Class, len(plan.Classes))
	topics := make(map[string]string, len(plan.Classes))
	for _, c := range plan.Classes {
		g.classes[c.Name], topics[c.Name] = c, cfg.Topic(c.Name)
	}
	g.topics.Store(&topics)
	schedules := schedulesOf(cfg)
	g.schedules.Store(&schedules)
	if g.spool, err = OpenSpool(filepath.Join(cfg.DataDir, "spool"), cfg.Spool, logger); err != nil {
		return nil, err
	}
	next, err := g.spool.NextSeqs()
	if err != nil {
		return nil, fmt.Errorf("recover seqs from the spool: %w", err)
	}
	g.metrics = newMetrics(g.reg, g.spool, func() []modbus.DeviceHealth {
		if g.poller == nil {
			return nil
		}
		return g.poller.Health()
	})
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	g.conns = map[string]*modbus.Conn{}
	for _, cc := range cfg.Connections {
		c, err := g.newConn(cc)
		if err != nil {
			return nil, err
		}
		g.conns[c.Name()] = c
	}
	devs := make([]modbus.Device, 0, len(cfg.Devices))
	for _, d := range cfg.Devices {
		devs = append(devs, device(cfg, plan, g.classes[d.Class], d, g.conns[d.Connection], next[d.ID]))
	}
	if g.poller, err = modbus.NewPoller(cfg.Poller, devs, g.emit, modbus.WithLogger(logger), modbus.WithObserver(g.metrics), modbus.WithValues()); err != nil {
		return nil, err
	}
	g.kafka = kafkaclient.NewMonitor(cfg.Kafka.Config, logger)
	g.kafka.OnFailure = func(e *kafkaclient.ConnError) { g.metrics.kafkaConnErrors.WithLabelValues(string(e.Cause)).Inc() }
	opts, err := producerOptions(cfg.Kafka, logger)
	if err != nil {
		return nil, &ConfigError{Err: kafkaclient.Rekey(err, func(k string) string { return "kafka." + k })}
	}
	if g.client, err = kgo.NewClient(append(opts, kgo.WithHooks(g.kafka))...); err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if cfg.HTTPListen != "" {
		if g.httpLn, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
			return nil, fmt.Errorf("http_listen %s: %w", cfg.HTTPListen, err)
		}
		g.http = &http.Server{Handler: g.handler(), ReadHeaderTimeout: 5 * time.Second}
	}
	ok = true
	return g, nil
}

// newConn builds the connection of cc (its defaults applied).
func (g *Gateway) newConn(cc modbus.ConnConfig) (*modbus.Conn, error) {
	cc = cc.WithDefaults()
	c, err := modbus.NewConn(cc, modbus.WithLogger(g.log), modbus.WithObserver(g.metrics))
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", cc.Name, err)
	}
	return c, nil
}

// device is the modbus.Device of d in cfg, of class (plan is Check's for
// cfg), polled through conn, whose next seq is seq.
func device(cfg Config, plan Plan, class *devices.Class, d DeviceConfig, conn *modbus.Conn, seq uint64) modbus.Device {
	dev := modbus.Device{
		ID:       d.ID,
		Factory:  cfg.Factory,
		Class:    class,
		Tags:     cfg.tags(d), // one map per device, shared by its samples
		Conn:     conn,
		Unit:     1,
		Schedule: d.Schedule,
		Seq:      seq,
	}
	if d.Unit != nil {
		dev.Unit = *d.Unit
	}
	dev.Plan = plan.plans[d.ID] // empty: the class's own plan
	var classRBE *ExceptionConfig
	if e, ok := cfg.ReportByException[d.Class]; ok {
		classRBE = &e
	}
	if f := exceptionFor(classRBE, d.ReportByException); f != nil {
		dev.Report = f.report
	}
	return dev
}

// schedulesOf is each device's schedule in cfg, by id.
func schedulesOf(cfg Config) map[string]modbus.Schedule {
	out := make(map[string]modbus.Schedule, len(cfg.Devices))
	for _, d := range cfg.Devices {
		out[d.ID] = d.Schedule
	}
	return out
}

// codecs are the kafka.compression values and their codecs. zstd runs at
// its fastest level (1): on batches of samples' JSON it compresses within
// a few percent of the default level (3), either way, in 15–30 % less
// time, and its encoders (franz-go pools one per P) hold a quarter of the
// default level's match tables: at 1,000 devices the gateway's resident
// set fell from 41 to 31 MiB (docs/BENCHMARKS.md, "Issue 16: end to
// end"). The producer compresses zstd with zstdCompressor, these options
// in zstd's lower-memory mode; the zstd codec here is the reference it is
// measured against (BenchmarkZstdLevel).
var codecs = map[string]kgo.CompressionCodec{
	"zstd": kgo.ZstdCompression().WithLevel(1), "lz4": kgo.Lz4Compression(), "snappy": kgo.SnappyCompression(),
	"gzip": kgo.GzipCompression(), "none": kgo.NoCompression(),
}

// producerOptions are the connection's options (kafkaclient) and the
// producer's.
func producerOptions(k KafkaConfig, logger *slog.Logger) ([]kgo.Opt, error) {
	opts, err := k.Opts(logger)
	if err != nil {
		return nil, err
	}
	compression := kgo.ProducerBatchCompression(codecs[k.Compression])
	if k.Compression == "zstd" {
		zc, err := newZstdCompressor()
		if err != nil {
			return nil, fmt.Errorf("kafka.compression zstd: %w", err)
		}
		compression = kgo.WithCompressor(zc)
	}
	return append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()), // with kgo's default idempotence
		compression,
		kgo.ProducerLinger(k.Linger),
	), nil
}

// emit is the poller's EmitFunc: a connection's scan into the spool, each
// sample into its class's topic.
func (g *Gateway) emit(ctx context.Context, samples []devices.Sample) error {
	return g.spool.AppendEach(ctx, samples, g.topicOf)
}

// topicOf is the topic of a sample of this gateway.
func (g *Gateway) topicOf(s *devices.Sample) string { return (*g.topics.Load())[s.Class] }

// Addr is the HTTP listener's address, nil when HTTPListen is empty.
func (g *Gateway) Addr() net.Addr {
	if g.httpLn == nil {
		return nil
	}
	return g.httpLn.Addr()
}

// Health is the poller's per-device health snapshot.
func (g *Gateway) Health() []modbus.DeviceHealth { return g.poller.Health() }

// Run polls and forwards until ctx ends, then stops polling, gives the
// forwarder up to drainTimeout to deliver the spool, and releases
// everything. It returns nil after a stop by ctx, or the poller's error.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.release()
	var wg sync.WaitGroup
	if g.http != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.http.Serve(g.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("http server", "err", err)
			}
		}()
	}
	fwdCtx, stopForwarding := context.WithCancel(context.WithoutCancel(ctx))
	g.fwd = &forwarder{spool: g.spool, client: g.client, log: g.log, metrics: g.metrics,
		factory: g.cfg.Factory, user: g.cfg.Kafka.SASL.Username, deliveryTimeout: g.cfg.Kafka.DeliveryTimeout}
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.fwd.run(fwdCtx)
	}()
	g.reloadMu.Lock()
	devs, conns := len(g.applied.Devices), len(g.applied.Connections)
	g.reloadMu.Unlock()
	g.log.Info("gateway running", "factory", g.cfg.Factory, "devices", devs, "connections", conns,
		"brokers", strings.Join(g.cfg.Kafka.Brokers, ","), "kafka", g.cfg.Kafka.Describe(), "spool", filepath.Join(g.cfg.DataDir, "spool"), "http", g.Addr())
	close(g.ready)
	err := g.poller.Run(ctx)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	// A reload in progress ends now (the poller has stopped); none
	// starts after this, so release below has the connections to itself.
	g.reloadMu.Lock()
	g.stopped = true
	g.reloadMu.Unlock()
	// Polling has stopped: give the forwarder a moment to deliver the
	// last samples, then stop it (what is left stays in the spool).
	g.waitDrained(drainTimeout)
	stopForwarding()
	if g.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		g.http.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
	return err
}

// waitDrained waits until every topic's checkpoint reaches its end, or d.
func (g *Gateway) waitDrained(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if g.spool.backlog(false) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.log.Warn("stopping with samples not yet forwarded; they stay in the spool", "samples", g.spool.backlog(false))
}

// release closes what New opened. It is idempotent.
func (g *Gateway) release() {
	if g.client != nil {
		g.client.Close()
		g.client = nil
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
	if g.httpLn != nil && g.http == nil {
		g.httpLn.Close()
	}
	if g.spool != nil {
		if err := g.spool.Close(); err != nil {
			g.log.Error("close the spool", "err", err)
		}
	}
}

// handler serves /metrics, /healthz (the process is up), /readyz (Run has
// started, no broker refuses the connection for a cause retrying cannot
// fix, the broker answered a metadata request within 2 s, and no topic's
// samples have waited for an acknowledgement or kept failing for longer
// than kafka.stall_timeout) and
// /devices (each device's health as JSON, snake_case keys, durations in
// seconds, times in RFC 3339: the schema is in the package documentation).
func (g *Gateway) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/devices", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(devicesJSON(g.poller.Health(), *g.schedules.Load()))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-g.ready:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if err := g.kafka.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := g.client.Ping(ctx); err != nil {
			if ce := g.kafka.Err(); ce != nil { // found out by this ping
				err = ce
			}
			http.Error(w, "broker unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if stalled := g.fwd.stalled(time.Now(), g.cfg.Kafka.StallTimeout); len(stalled) > 0 {
			http.Error(w, "forwarding stalled (the spool keeps the samples): "+strings.Join(stalled, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Gatherer is the gateway's Prometheus registry, as served on /metrics, for
// a process that embeds it (the demo).
func (g *Gateway) Gatherer() prometheus.Gatherer { return g.reg }
