package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/storage/mongots"
)

// Sink consumes sample records as a member of a consumer group and writes
// them to MongoDB. Build it with New, run it with Run; it owns its Kafka
// client, its MongoDB client and its HTTP listener, and releases them when
// Run returns.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	mongo   *mongo.Client
	client  *kgo.Client
	kafka   *kafkaclient.Monitor
	pipe    *pipeline
	reg     *prometheus.Registry
	metrics *metrics
	http    *http.Server
	httpLn  net.Listener
	ready   chan struct{}

	// rebalanceWaiting is set when the group wants a rebalance that the
	// batch in progress blocks, and cleared when a rebalance callback runs.
	rebalanceWaiting atomic.Bool

	releaseOnce sync.Once
}

// NewStore connects to MongoDB as cfg says and returns a Store on its
// database, and the client, which the caller disconnects. The driver
// connects lazily: an unreachable server shows up at the first operation.
func NewStore(cfg MongoConfig, logger *slog.Logger) (*mongots.Store, *mongo.Client, error) {
	opts := options.Client().ApplyURI(cfg.URI).SetAppName("factorywire-sink")
	if cfg.ServerSelectionTimeout > 0 {
		opts.SetServerSelectionTimeout(cfg.ServerSelectionTimeout)
	}
	wc, err := cfg.writeConcern()
	if err != nil {
		return nil, nil, err
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("mongodb.uri %s: %w", redactURI(cfg.URI), err)
	}
	so := mongots.DefaultOptions()
	so.Database, so.TimeSeries, so.Logger, so.WriteConcern = cfg.Database, cfg.TimeSeries, logger, wc
	so.Shard = cfg.Shard
	if cfg.AllowWeakWriteConcern && cfg.WriteConcern != "" && cfg.WriteConcern != "majority" {
		logger.Warn("mongodb.write_concern is not majority: a failover can lose samples MongoDB acknowledged; the reads that find what is stored use read concern local",
			"write_concern", cfg.WriteConcern)
	}
	return mongots.New(client, so), client, nil
}

// New validates cfg and builds the sink: the MongoDB client, the Kafka
// client (nothing is consumed before Run) and the HTTP listener.
func New(cfg Config, logger *slog.Logger) (*Sink, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, log: logger, reg: prometheus.NewRegistry(), ready: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.release()
		}
	}()
	s.metrics = newMetrics(s.reg)
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, client, err := NewStore(cfg.MongoDB, logger)
	if err != nil {
		return nil, err
	}
	s.mongo = client
	s.pipe = newPipeline(cfg, logger, s.metrics, st)
	s.pipe.produce = s.produce
	s.pipe.abandon = s.rebalanceWaiting.Load
	s.kafka = kafkaclient.NewMonitor(cfg.Kafka.Config, logger)
	opts, err := s.kafkaOptions()
	if err != nil {
		return nil, kafkaclient.Rekey(err, func(k string) string { return "kafka." + k })
	}
	if s.client, err = kgo.NewClient(append(opts, kgo.WithHooks(s.kafka))...); err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if cfg.HTTPListen != "" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
			return nil, fmt.Errorf("http_listen %s: %w", cfg.HTTPListen, err)
		}
		s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	}
	ok = true
	return s, nil
}

// kafkaOptions: the connection's options (kafkaclient), then a group
// consumer of the configured topics (never the dead-letter ones),
// committing by hand after each batch, whose rebalances wait for the batch
// in progress; also the producer of dead letters (acks=all, idempotent).
func (s *Sink) kafkaOptions() ([]kgo.Opt, error) {
	k := s.cfg.Kafka
	opts, err := k.Opts(s.log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(k.Group),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(s.cfg.TopicsRegex()),
		kgo.ConsumeExcludeTopics(`^.*\.dlq$`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(s.adjustOffsets),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { s.rebalanceWaiting.Store(true) }),
		kgo.SessionTimeout(k.SessionTimeout),
		kgo.RebalanceTimeout(k.RebalanceTimeout),
		kgo.HeartbeatInterval(k.HeartbeatInterval),
		kgo.FetchMaxBytes(k.FetchMaxBytes),
		kgo.MetadataMaxAge(time.Minute), // how soon a new topic of a factory is consumed
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	if k.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(k.InstanceID))
	}
	return opts, nil
}

// Addr is the HTTP listener's address, nil when HTTPListen is empty.
func (s *Sink) Addr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Run consumes, writes and commits until ctx ends, then finishes the batch
// in progress (for up to ShutdownTimeout), commits it, leaves the group
// and releases everything. It returns nil after a stop by ctx, or the
// error that stopped the sink, which needs a person: MongoDB refusing a
// batch for good (not authorized, a collection of the wrong shape), or a
// broker refusing the connection for good (a *kafkaclient.ConnError: wrong
// credentials, an untrusted or misnamed certificate), after which the sink
// stops as it does at the end of ctx.
func (s *Sink) Run(ctx context.Context) error {
	defer s.release()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-s.kafka.Failed():
			stopRun(s.kafka.First())
		case <-ctx.Done():
		}
	}()
	if s.http != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http server", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s.http.Shutdown(sctx)
			cancel()
		}()
	}
	s.log.Info("sink running", "group", s.cfg.Kafka.Group, "topics", s.cfg.TopicsRegex(),
		"brokers", strings.Join(s.cfg.Kafka.Brokers, ","), "kafka", s.cfg.Kafka.Describe(), "mongodb", redactURI(s.cfg.MongoDB.URI),
		"database", s.cfg.MongoDB.Database, "http", s.Addr())
	close(s.ready)

	// work outlives ctx by up to ShutdownTimeout, so that the last batch
	// is written and committed after SIGTERM. The summaries write beside
	// the pipeline runs under work too: whatever way Run returns, it ends
	// (work canceled first) before the clients are released.
	defer s.pipe.waitSummaries()
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(s.cfg.ShutdownTimeout, cancelWork) })
	defer stopAfter()

	for ctx.Err() == nil {
		recs, fetchErrs := s.collect(ctx)
		// The summaries written beside the pipeline land between two
		// batches; after a rollup conflict the batch is consumed again,
		// with the partitions concerned from their hold.
		if err := s.pipe.landSummaries(false); err != nil {
			s.client.AllowRebalance()
			return fatalHint(err)
		}
		if rewinds := s.pipe.takeRewinds(); len(rewinds) > 0 {
			s.rewind(recs, rewinds)
			s.client.AllowRebalance()
			continue
		}
		if len(recs) == 0 {
			next, err := s.pipe.finish(work, false)
			if err != nil {
				s.client.AllowRebalance()
				return fatalHint(err)
			}
			if next != nil {
				s.commit(work, next, false)
			}
			s.client.AllowRebalance()
			if fetchErrs > 0 { // do not spin on a fetch error that repeats
				sleepCtx(ctx, s.cfg.Retry.MinBackoff)
			}
			continue
		}
		res, err := s.pipe.process(work, recs)
		switch {
		case errors.Is(err, errAbandoned) || work.Err() != nil && err != nil:
			s.rewind(recs, s.pipe.takeRewinds())
			s.metrics.abandoned.Inc()
			s.log.Warn("batch given up; its records will be consumed again", "records", len(recs), "err", err)
		case err != nil:
			s.client.AllowRebalance()
			return fatalHint(err)
		default:
			if len(res.next) > 0 {
				s.commit(work, res.next, false)
			}
			s.metrics.batches.Inc()
			s.metrics.batchSize.Observe(float64(len(recs)))
		}
		s.rebalanceWaiting.Store(false)
		s.client.AllowRebalance()
	}
	next, err := s.pipe.finish(work, true)
	if next != nil {
		s.commit(work, next, true)
	}
	if err != nil {
		return fatalHint(err)
	}
	var ce *kafkaclient.ConnError
	if err := context.Cause(ctx); errors.As(err, &ce) {
		s.log.Error("sink stopping: a broker refuses the connection", "err", err)
		return err
	}
	s.log.Info("sink stopping: leaving the group")
	return nil
}

// collect polls one batch: what the client has fetched, up to
// batch.max_records records. It waits for the first record and, with
// batch.max_wait 0 (the default), for nothing more: the batch is what
// came in while the previous one was written, so that a write starts as
// soon as there are records and none is in flight, and batches grow with
// the load rather than with a timer. With batch.max_wait set it waits
// that long after the first record for more, up to max_records. It
// returns nothing when ctx ends first, and how many fetch errors it
// logged.
func (s *Sink) collect(ctx context.Context) ([]*kgo.Record, int) {
	var recs []*kgo.Record
	errs := 0
	add := func(fs kgo.Fetches) {
		fs.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			errs++
			s.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				s.metrics.setLag(p.Topic, p.Partition, p.HighWatermark-p.Records[n-1].Offset-1)
				recs = append(recs, p.Records...)
			}
		})
	}
	limit := s.cfg.Batch.MaxRecords
	// While status entries or rollups are held back, wait for records
	// only until their write is due or the one in progress has ended: an
	// idle sink writes them, then saves the offsets they held and
	// commits.
	pollCtx := ctx
	if at, done, ok := s.pipe.wake(); ok {
		var cancel context.CancelFunc
		if done != nil {
			pollCtx, cancel = context.WithCancel(ctx)
			go func() {
				select {
				case <-done:
					cancel()
				case <-pollCtx.Done():
				}
			}()
		} else {
			pollCtx, cancel = context.WithDeadline(ctx, at)
		}
		defer cancel()
	}
	add(s.client.PollRecords(pollCtx, limit))
	if len(recs) == 0 || s.cfg.Batch.MaxWait <= 0 {
		return recs, errs
	}
	deadline := time.Now().Add(s.cfg.Batch.MaxWait)
	for len(recs) < limit && ctx.Err() == nil {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		add(s.client.PollRecords(pctx, limit-len(recs)))
		done := pctx.Err() != nil
		cancel()
		if done {
			break
		}
	}
	return recs, errs
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// rewind sets the fetch position of every partition of an abandoned batch
// back to its first record, so that partitions this member keeps consume
// it again (MongoDB is checked for what it already holds: the pipeline
// raised the partitions' floors before writing), or to an earlier offset
// given in earlier (a partition whose rollups must be folded again).
func (s *Sink) rewind(recs []*kgo.Record, earlier map[string]map[int32]kgo.EpochOffset) {
	first := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range recs {
		if first[r.Topic] == nil {
			first[r.Topic] = map[int32]kgo.EpochOffset{}
		}
		if _, ok := first[r.Topic][r.Partition]; !ok {
			first[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: -1, Offset: r.Offset}
		}
	}
	for topic, parts := range earlier {
		for part, eo := range parts {
			if first[topic] == nil {
				first[topic] = map[int32]kgo.EpochOffset{}
			}
			if cur, ok := first[topic][part]; !ok || eo.Offset < cur.Offset {
				first[topic][part] = eo
			}
		}
	}
	s.client.SetOffsets(first)
}

// commit commits next to the broker, so that lag tools see the group's
// progress. MongoDB's checkpoint is already saved and decides where a
// partition starts, so a failure here is logged and the next batch's
// commit covers it. Between batches it does not wait for the broker's
// answer (the next batch starts at once; the client sends commits one at
// a time, in order); when the sink stops it does (wait).
func (s *Sink) commit(ctx context.Context, next map[string]map[int32]kgo.EpochOffset, wait bool) {
	done := func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("commit offsets to the broker (MongoDB's checkpoint is saved)", "err", err)
			}
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					s.log.Warn("commit offsets to the broker (MongoDB's checkpoint is saved)", "topic", t.Topic, "partition", p.Partition, "err", err)
				}
			}
		}
	}
	if !wait {
		s.client.CommitOffsets(ctx, next, done)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Retry.AttemptTimeout)
	defer cancel()
	s.client.CommitOffsetsSync(cctx, next, done)
}

// produce sends dead letters and waits for the broker's acknowledgements.
func (s *Sink) produce(ctx context.Context, recs []*kgo.Record) []error {
	results := s.client.ProduceSync(ctx, recs...)
	errs := make([]error, len(recs))
	for i, r := range results {
		errs[i] = r.Err
	}
	return errs
}

// adjustOffsets is kgo's AdjustFetchOffsetsFn: each newly assigned
// partition starts at the highest of its committed offset and MongoDB's
// checkpoint.
func (s *Sink) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	s.rebalanceWaiting.Store(false)
	for topic, parts := range offsets {
		committed := make(map[int32]int64, len(parts))
		for p, o := range parts {
			committed[p] = o.EpochOffset().Offset
		}
		ends := func(ctx context.Context) (map[int32]int64, error) { return s.endOffsets(ctx, topic, parts) }
		start, err := s.pipe.assign(ctx, topic, committed, ends)
		if err != nil {
			return nil, err
		}
		for p, o := range start {
			if o >= 0 && o != committed[p] {
				parts[p] = kgo.NewOffset().At(o)
			}
		}
	}
	return offsets, nil
}

// endOffsets returns the end offset (high watermark) of each partition of
// topic in parts, from a ListOffsets request.
func (s *Sink) endOffsets(ctx context.Context, topic string, parts map[int32]kgo.Offset) (map[int32]int64, error) {
	listed, err := kadm.NewClient(s.client).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(parts))
	for p := range parts {
		lo, ok := listed.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("partition %d: no end offset listed", p)
		}
		if lo.Err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, lo.Err)
		}
		out[p] = lo.Offset
	}
	return out, nil
}

// onRevoked and onLost wait for the summaries write in progress (a
// failing one gives up) before the pipeline forgets the partitions:
// nothing of a partition is written after it left this member. A revoked
// partition's attempted mark is lowered to what this member may have
// written first (a lost one's is not: another member may own it already).
func (s *Sink) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.pipe.awaitSummaries()
	s.rebalanceWaiting.Store(false)
	s.pipe.lowerMarks(context.WithoutCancel(ctx), revoked)
	s.forget(revoked, "revoked")
}

func (s *Sink) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.pipe.awaitSummaries()
	s.rebalanceWaiting.Store(false)
	s.forget(lost, "lost")
}

func (s *Sink) forget(parts map[string][]int32, why string) {
	for topic, ps := range parts {
		s.pipe.revoke(topic, ps)
		for _, p := range ps {
			s.metrics.dropLag(topic, p)
		}
		if len(ps) > 0 {
			s.log.Info("partitions "+why, "topic", topic, "partitions", ps)
		}
	}
}

// release closes what New opened, in order: the Kafka client first (it
// leaves the group, so the partitions move on at once), then MongoDB's
// client. It is idempotent.
func (s *Sink) release() {
	s.releaseOnce.Do(func() {
		if s.client != nil {
			s.client.AllowRebalance()
			s.client.Close()
		}
		if s.mongo != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.mongo.Disconnect(ctx); err != nil {
				s.log.Warn("disconnect from MongoDB", "err", err)
			}
			cancel()
		}
		if s.httpLn != nil {
			s.httpLn.Close() // already closed if Run served it
		}
	})
}

// handler serves /metrics, /healthz (the process is up) and /readyz (Run
// has started, no broker refuses the connection, and the broker and
// MongoDB answer within 2 s).
func (s *Sink) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.ready:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if err := s.kafka.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.client.Ping(ctx); err != nil {
			http.Error(w, "broker unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := s.mongo.Ping(ctx, nil); err != nil {
			http.Error(w, "mongodb unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Gatherer is the sink's Prometheus registry, as served on /metrics, for
// a process that embeds it (the demo).
func (s *Sink) Gatherer() prometheus.Gatherer { return s.reg }
