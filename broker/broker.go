package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// Broker is a single-node Kafka-protocol broker over commitlog partitions.
// New starts it; Close or Shutdown stops it. All methods are safe for
// concurrent use.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	logOpts commitlog.Options    // base options for every partition log
	files   *commitlog.FileCache // closed segments' open files, shared by every log
	lock    *dirLock
	// listeners accept the client connections; the first is the one
	// Addr reports.
	listeners []*listener
	users     *userStore // SASL users' SCRAM credentials
	pids      *producerIDs
	data      notifier     // signalled whenever a high watermark advances
	groups    *coordinator // nil while groupsOffline
	// groupsOffline is why the committed offsets' log could not be opened
	// (a corrupt segment): consumer groups are unavailable, every
	// partition serves. Set once by open.
	groupsOffline error
	reg           *prometheus.Registry
	authz         *authorizer // nil when authorization is disabled
	metrics       *metrics
	limits        *limits

	// The HTTP endpoints (Config.HTTPListen; nil when off): http.go.
	httpLn   net.Listener
	http     *http.Server
	httpDone chan struct{} // closed when http's Serve returned

	// requestBudget holds the bytes of requests being read or handled
	// (queued_max_request_bytes); responseBudget those of fetch responses
	// built and not yet written (queued_max_response_bytes).
	requestBudget, responseBudget *budget

	ctx    context.Context // cancelled when shutdown begins
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop, retention loop, connections

	mu        sync.RWMutex // guards catalog and topics
	catalog   catalog
	topics    map[string]*topic
	connsMu   sync.Mutex
	conns     map[*conn]struct{}
	connsByIP map[string]int // open connections per remote IP; guarded by connsMu
	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the data directory, recovers every partition log,
// starts listening on cfg.Listen and serves until Close. It fails with an
// error naming the directory if another process holds the data dir, or if it
// cannot be read or written.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	flush, _ := cfg.flushPolicy()
	b := &Broker{
		cfg: cfg,
		log: logger,
		logOpts: commitlog.Options{
			Flush:         flush,
			FlushInterval: cfg.FlushInterval,
			Logger:        logger,
			FS:            cfg.FS,
		}.WithDefaults(),
		topics:    map[string]*topic{},
		conns:     map[*conn]struct{}{},
		connsByIP: map[string]int{},
		reg:       prometheus.NewRegistry(),
	}
	b.metrics = newMetrics(b.reg)
	b.reg.MustRegister(logSizeCollector{b})
	b.logOpts.OnSync = b.metrics.observeFsync
	b.limits = newLimits(logger, b.metrics)
	b.requestBudget = newBudget(cfg.QueuedMaxRequestBytes, b.metrics.queuedRequest)
	b.responseBudget = newBudget(cfg.QueuedMaxResponseBytes, b.metrics.queuedResponse)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	b.lock = lock
	b.files = commitlog.NewFileCache(commitlog.FileCacheOptions{
		MaxSegments: cfg.MaxOpenClosedSegments,
		Idle:        cfg.ClosedSegmentIdle,
		OnEvict: func() {
			b.limits.hit(limitMaxOpenClosedSegments, "closed a segment's files early to open another's; raise max_open_closed_segments if this repeats",
				"max_open_closed_segments", cfg.MaxOpenClosedSegments)
		},
	})
	b.logOpts.FileCache = b.files
	b.metrics.files.Store(b.files)
	b.checkOpenFilesLimit()
	if err := b.open(); err != nil {
		b.closeLogs()
		lock.release()
		return nil, err
	}
	if err := b.openListeners(); err != nil {
		b.closeLogs()
		lock.release()
		return nil, err
	}
	if err := b.listenHTTP(); err != nil {
		for _, l := range b.listeners {
			l.ln.Close()
		}
		b.closeLogs()
		lock.release()
		return nil, err
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(1 + len(b.listeners))
	for _, l := range b.listeners {
		go b.acceptLoop(l)
	}
	go b.maintain()
	b.serveHTTP()
	if cfg.ScrubOnStart {
		b.startScrub()
	}
	return b, nil
}

// open loads the catalog and opens every partition log, recovering those
// that were not closed cleanly.
func (b *Broker) open() error {
	dir := b.cfg.DataDir
	probe := filepath.Join(dir, ".write-probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	os.Remove(probe)
	if err := removeDeleted(dir); err != nil {
		return fmt.Errorf("data dir %s: remove deleted topics: %w", dir, err)
	}
	cat, err := loadCatalog(dir)
	if err != nil {
		return err
	}
	if err := cat.save(dir); err != nil {
		return fmt.Errorf("data dir %s: write topic catalog: %w", dir, err)
	}
	pids, err := loadProducerIDs(dir)
	if err != nil {
		return err
	}
	b.catalog, b.pids = cat, pids
	if b.users, err = loadUsers(dir); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := b.bootstrapUsers(); err != nil {
		return err
	}
	if err := b.openAuthorizer(); err != nil {
		return err
	}
	offline := 0
	offsets, err := openOffsetStore(dir, b.logOpts)
	var ce *commitlog.CorruptionError
	switch {
	case errors.As(err, &ce):
		// The committed offsets' log is the broker's own partition: a
		// corrupt segment in it takes the consumer groups offline, and
		// every topic partition still serves.
		b.groupsOffline = err
		offline++
		b.log.Error("consumer groups offline: the committed offsets' log is corrupt; FindCoordinator answers COORDINATOR_NOT_AVAILABLE until it is repaired; every partition serves",
			"dir", filepath.Join(dir, offsetsDir), "file", ce.Segment, "byte", ce.Offset, "err", err,
			"repair", fmt.Sprintf("broker repair --data-dir %s --topic %s --partition 0", dir, offsetsDir))
		b.metrics.partitionErrors.WithLabelValues(offsetsDir, "0", faultCause(err)).Inc()
	case err != nil:
		return err
	default:
		b.groups = newCoordinator(b.cfg, b.log, offsets, b.metrics)
		b.groups.limits = b.limits
	}
	for _, m := range cat.Topics {
		t := &topic{meta: m}
		b.topics[m.Name] = t // before opening, so closeLogs sees partial opens
		for p := int32(0); p < m.Partitions; p++ {
			part, err := b.openPartition(m, p)
			if err != nil {
				// A fault stays where it happened: this partition
				// goes offline, the others serve.
				part = b.offlinePartition(m, p, err)
				offline++
			}
			t.partitions = append(t.partitions, part)
		}
	}
	b.metrics.offlinePartitions.Set(float64(offline))
	if n := len(b.allPartitions()) + offline; n > b.cfg.MaxPartitions {
		b.log.Warn("the data dir holds more partitions than max_partitions; they are all served, but no partition can be added", "partitions", n, "max_partitions", b.cfg.MaxPartitions)
	}
	b.log.Info("data dir opened", "dir", dir, "topics", len(cat.Topics), "offline_partitions", offline, "cluster_id", cat.ClusterID)
	return nil
}

// offlinePartition is partition p of topic m when its log could not be
// opened: it answers KAFKA_STORAGE_ERROR to produce, fetch and list offsets,
// and LEADER_NOT_AVAILABLE in Metadata, until it is repaired and the broker
// restarted. The log line names the file and byte of a corrupt segment.
func (b *Broker) offlinePartition(m topicMeta, p int32, err error) *partition {
	attrs := []any{"topic", m.Name, "partition", p, "err", err}
	var ce *commitlog.CorruptionError
	if errors.As(err, &ce) {
		attrs = append(attrs, "file", ce.Segment, "byte", ce.Offset)
	}
	attrs = append(attrs, "repair", fmt.Sprintf("broker repair --data-dir %s --topic %s --partition %d", b.cfg.DataDir, m.Name, p))
	b.log.Error("partition offline: its log could not be opened; every other partition serves", attrs...)
	b.metrics.partitionErrors.WithLabelValues(m.Name, strconv.Itoa(int(p)), faultCause(err)).Inc()
	return &partition{
		topic:   m.Name,
		index:   p,
		dir:     partitionDir(b.cfg.DataDir, m.Name, p),
		offline: err,
		faults:  newFaultReporter(b.log, b.metrics, m.Name, p),
	}
}

func (b *Broker) openPartition(m topicMeta, p int32) (*partition, error) {
	dir := partitionDir(b.cfg.DataDir, m.Name, p)
	l, err := commitlog.Open(dir, b.cfg.Topics.logOptions(b.logOpts, m.Configs))
	if err != nil {
		return nil, fmt.Errorf("open partition %s-%d: %w", m.Name, p, err)
	}
	producers, err := loadProducers(dir, l, time.Now())
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("open partition %s-%d: restore producer state: %w", m.Name, p, err)
	}
	part := &partition{
		topic:       m.Name,
		index:       p,
		dir:         dir,
		log:         l,
		flushAlways: b.logOpts.Flush == commitlog.FlushAlways,
		producers:   producers,
		faults:      newFaultReporter(b.log, b.metrics, m.Name, p),
		stats:       b.metrics.traffic.topic(m.Name),
	}
	part.maxMessageBytes.Store(b.cfg.Topics.effectiveInt(m.Configs, "max.message.bytes"))
	return part, nil
}

// filesNeeded is the most files the broker's limits let it open: three per
// partition (the active segment's .log, .index and .timeindex), three per
// closed segment the file cache may keep open, one per connection, and a
// margin for the catalog, the offset store, listeners and the process.
func (c Config) filesNeeded() uint64 {
	return 3*uint64(c.MaxPartitions) + 3*uint64(c.MaxOpenClosedSegments) + uint64(c.MaxConnections) + 64
}

// checkOpenFilesLimit warns when the process's open-files limit is below
// what the configured limits may use: past it, segment rolls and accepts fail
// with "too many open files" (the partitions heal once files are released,
// but produces fail meanwhile).
func (b *Broker) checkOpenFilesLimit() {
	limit, need := openFilesLimit(), b.cfg.filesNeeded()
	if limit == 0 || limit >= need {
		return
	}
	b.log.Warn("the open-files limit (RLIMIT_NOFILE) is below what max_partitions, max_open_closed_segments and max_connections allow; raise it (systemd LimitNOFILE=, ulimit -n) or lower them",
		"open_files_limit", limit, "needed", need, "max_partitions", b.cfg.MaxPartitions,
		"max_open_closed_segments", b.cfg.MaxOpenClosedSegments, "max_connections", b.cfg.MaxConnections)
}

// openListeners opens every configured listener; on error none stays open.
func (b *Broker) openListeners() error {
	for _, lc := range b.cfg.listenerConfigs() {
		l, err := openListener(lc)
		if err != nil {
			for _, l := range b.listeners {
				l.ln.Close()
			}
			b.listeners = nil
			return err
		}
		if l.sasl() && !isTLS(l.protocol) && slices.Contains(l.mechanisms, mechPlain) {
			b.log.Warn("SASL/PLAIN is enabled on a listener without TLS: passwords cross the network in clear", "listener", l.name)
		}
		b.log.Info("listening", "listener", l.name, "protocol", l.protocol, "addr", l.ln.Addr().String(),
			"advertised", net.JoinHostPort(l.advHost, strconv.Itoa(int(l.advPort))))
		b.listeners = append(b.listeners, l)
	}
	return nil
}

// Addr returns the address of the broker's first listener.
func (b *Broker) Addr() net.Addr { return b.listeners[0].ln.Addr() }

// ListenerAddr returns the address of the listener named name, or nil.
func (b *Broker) ListenerAddr(name string) net.Addr {
	for _, l := range b.listeners {
		if l.name == name {
			return l.ln.Addr()
		}
	}
	return nil
}

// Registry returns the registry of the broker's Prometheus metrics
// (factorywire_broker_*), for an HTTP handler or a test to gather.
func (b *Broker) Registry() *prometheus.Registry { return b.reg }

// ClusterID returns the cluster id stored in the data dir.
func (b *Broker) ClusterID() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.catalog.ClusterID
}

func (b *Broker) acceptLoop(l *listener) {
	defer b.wg.Done()
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if b.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (too many open files, aborted
			// handshakes) must not end the broker: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				b.limits.hit(limitOpenFiles, "accept failed: the process is out of file handles; retrying (see RLIMIT_NOFILE and max_connections)",
					"err", err, "backoff", backoff)
			} else {
				b.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
			}
			select {
			case <-time.After(backoff):
				continue
			case <-b.ctx.Done():
				return
			}
		}
		backoff = 0
		c := b.admit(l, nc)
		if c == nil {
			if b.ctx.Err() != nil {
				return
			}
			continue
		}
		go func() {
			defer b.wg.Done()
			c.serve()
			b.connsMu.Lock()
			delete(b.conns, c)
			if b.connsByIP[c.ip]--; b.connsByIP[c.ip] == 0 {
				delete(b.connsByIP, c.ip)
			}
			b.metrics.connections.Set(float64(len(b.conns)))
			b.connsMu.Unlock()
		}()
	}
}

// admit registers a new connection, or closes it and returns nil when the
// broker shuts down or the connection is past max_connections or
// max_connections_per_ip. Closing right after accept is what Kafka does
// for both limits: the client sees its connection end and retries.
func (b *Broker) admit(l *listener, nc net.Conn) *conn {
	addr, ip := nc.RemoteAddr().String(), remoteIP(nc)
	b.connsMu.Lock()
	var limit, msg string
	var n int
	switch {
	case b.ctx.Err() != nil:
	case len(b.conns) >= b.cfg.MaxConnections:
		limit, n, msg = limitMaxConnections, b.cfg.MaxConnections, "connection refused: too many connections; closed after accept"
	case b.connsByIP[ip] >= b.cfg.MaxConnectionsPerIP:
		limit, n, msg = limitMaxConnectionsPerIP, b.cfg.MaxConnectionsPerIP, "connection refused: too many connections from this address; closed after accept"
	default:
		c := newConn(b, l, nc)
		b.conns[c] = struct{}{}
		b.connsByIP[ip]++
		b.metrics.connections.Set(float64(len(b.conns)))
		b.wg.Add(1)
		b.connsMu.Unlock()
		return c
	}
	b.connsMu.Unlock()
	if limit != "" {
		b.limits.hit(limit, msg, "client", addr, limit, n)
	}
	nc.Close()
	return nil
}

// remoteIP returns the IP address of a connection's peer, which the
// per-IP connection limit counts (the whole address if it has no port).
func remoteIP(nc net.Conn) string {
	addr := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// maintain runs the periodic work: retention and time-based rolling, and
// producer-state snapshots.
func (b *Broker) maintain() {
	defer b.wg.Done()
	retention := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer retention.Stop()
	snapshots := time.NewTicker(producerSnapshotInterval)
	defer snapshots.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-retention.C:
			b.applyRetention()
		case <-snapshots.C:
			b.snapshotProducers()
		}
	}
}

func (b *Broker) snapshotProducers() {
	for _, p := range b.allPartitions() {
		if err := p.snapshotProducers(time.Now()); err != nil {
			b.log.Warn("producer state snapshot failed; a restart will replay more of the log", "topic", p.topic, "partition", p.index, "err", err)
		}
	}
}

// applyRetention runs retention and time-based rolling on every partition.
func (b *Broker) applyRetention() {
	for _, p := range b.allPartitions() {
		n, err := p.log.Retain()
		if err != nil && !errors.Is(err, commitlog.ErrClosed) {
			b.log.Error("retention failed", "topic", p.topic, "partition", p.index, "err", err)
		} else if n > 0 {
			b.log.Info("retention deleted segments", "topic", p.topic, "partition", p.index, "segments", n, "log_start_offset", p.log.StartOffset())
		}
	}
}

// allPartitions returns every partition whose log is open (not offline).
func (b *Broker) allPartitions() []*partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var ps []*partition
	for _, t := range b.topics {
		for _, p := range t.partitions {
			if p.log != nil {
				ps = append(ps, p)
			}
		}
	}
	return ps
}

// Close stops the broker and waits for it: see Shutdown.
func (b *Broker) Close() error { return b.Shutdown(context.Background()) }

// Shutdown stops accepting connections, closes every client connection,
// waits for in-flight requests to finish (until ctx is done), stops the
// HTTP endpoints (which answer /readyz 503 meanwhile), then closes the
// partition logs (fsync and clean-shutdown marker, so the next start skips
// recovery) and releases the data dir. The order matters: a log must not
// close while a produce still appends to it. Shutdown is idempotent.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.cancel()
		for _, l := range b.listeners {
			l.ln.Close()
		}
		b.connsMu.Lock()
		for c := range b.conns {
			c.nc.Close()
		}
		b.connsMu.Unlock()
		done := make(chan struct{})
		go func() { b.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			b.log.Warn("shutdown deadline passed with requests in flight; closing logs anyway")
		}
		b.stopHTTP(ctx)
		b.closeErr = b.closeLogs()
		b.lock.release()
		b.log.Info("broker stopped", "dir", b.cfg.DataDir)
	})
	return b.closeErr
}

// closeLogs stops the group coordinator and closes the offset store and
// every partition log, then the file cache they share.
func (b *Broker) closeLogs() error {
	var errs []error
	if b.groups != nil {
		b.groups.close()
		if err := b.groups.offsets.close(); err != nil {
			errs = append(errs, fmt.Errorf("close offset store: %w", err))
		}
	}
	for _, p := range b.allPartitions() {
		if err := p.snapshotProducers(time.Now()); err != nil {
			b.log.Warn("producer state snapshot failed; the next start will replay the log", "topic", p.topic, "partition", p.index, "err", err)
		}
		if err := p.log.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s-%d: %w", p.topic, p.index, err))
		}
	}
	b.files.Close()
	return errors.Join(errs...)
}

// notifier wakes goroutines waiting for new data. wait returns a channel
// closed at the next broadcast.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
