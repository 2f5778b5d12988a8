package brokersoak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/procstat"
)

// progressInterval is how often a running soak logs its progress.
const progressInterval = 30 * time.Second

// Run runs one soak: it starts the broker as a child process, the
// producer/consumer pair, then the hostile clients for cfg.Duration (or
// until ctx ends), stops them, drains the pair, reads the log back, stops
// the broker and returns the report. An error means the soak could not
// run (the broker did not build or start, its topics could not be
// created); what a run found, lost records included, is in the Report
// (see Report.Failures).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "brokersoak: "+format+"\n", args...)
	}
	parent := cfg.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	work, err := os.MkdirTemp(parent, "brokersoak-")
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: cfg, WorkDir: work, Started: time.Now(), Machine: benchkit.ReadMachine("broker", "storage/commitlog")}
	defer func() {
		if !cfg.Keep && len(rep.Failures()) == 0 {
			os.RemoveAll(work)
			rep.WorkDir += " (removed)"
		}
	}()

	bin := cfg.BrokerBin
	if bin == "" {
		logf("building the broker")
		if bin, err = buildBroker(ctx, work); err != nil {
			return nil, err
		}
	}
	rep.BrokerBin = bin
	raw, err := cfg.brokerYAML(filepath.Join(work, "data"))
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(work, "broker.yaml")
	if err := os.WriteFile(configPath, raw, 0o644); err != nil {
		return nil, err
	}
	bc, err := loadBrokerConfig(configPath)
	if err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	rep.BrokerConfig = string(raw)
	rep.Limits = bc
	rep.FilesBound = openFilesBound(bc)

	bp, err := startBroker(ctx, bin, configPath, filepath.Join(work, "broker.log"))
	if err != nil {
		return nil, err
	}
	defer bp.stop()
	rep.BrokerLog = bp.logPath
	logf("broker pid %d listening on %s; work directory %s", bp.child.Pid(), bp.addr, work)

	// The hostile clients dial from 127.0.N.x so that per-address limits
	// see them apart from the pair: check the machine routes those.
	probe, err := dialFrom(ctx, ipRange(hostileIPBase).ip(0), bp.addr, 0)
	if err != nil {
		return nil, fmt.Errorf("dial the broker from %v: %w (the hostile clients need the loopback block 127.0.0.0/8, as Linux routes it)", ipRange(hostileIPBase).ip(0), err)
	}
	probe.Close()

	smp := newSampler(bp.child.Pid())
	sctx, stopSampler := context.WithCancel(context.Background())
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		smp.run(sctx)
	}()
	defer func() {
		stopSampler()
		sampling.Wait()
	}()

	topics := make([]string, cfg.Topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("soak-pair-%d", i)
	}
	if err := createTopics(ctx, bp.addr, cfg, topics); err != nil {
		return nil, err
	}

	// The pair runs on a context of its own: an interrupt ends the hostile
	// phase early, and the pair still drains.
	l := newLedger(topics)
	pctx, stopPair := context.WithCancel(context.Background())
	defer stopPair()
	stopProducing, produced := make(chan struct{}), make(chan error, 1)
	consumerDone, consumed := make(chan struct{}), make(chan error, 1)
	go func() { produced <- produce(pctx, bp.addr, cfg, l, stopProducing) }()
	go func() { consumed <- consume(pctx, bp.addr, cfg, l, consumerDone) }()

	logf("warm-up: the pair alone for %v", cfg.Warmup)
	sleep(ctx, cfg.Warmup)
	if s, err := readSample(bp.child.Pid()); err == nil {
		rep.BaselineRSS = s.RSS
	}

	e := &env{addr: bp.addr, bc: bc, cfg: cfg, l: l, groups: &churnLog{last: map[string]time.Time{}}}
	hctx, stopHostiles := context.WithTimeout(ctx, cfg.Duration)
	defer stopHostiles()
	logf("hostile phase: %v", cfg.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	var kinds []*KindReport
	var counts []*counters
	for i, h := range hostiles() {
		if !cfg.runs(h.name) {
			continue
		}
		c := newCounters()
		kinds = append(kinds, &KindReport{Name: h.name, What: h.what, Expect: h.expect})
		counts = append(counts, c)
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.run(hctx, e, ipRange(hostileIPBase+i), rng, c)
		}()
	}
	progress := time.NewTicker(progressInterval)
	for hctx.Err() == nil {
		select {
		case <-hctx.Done():
		case <-progress.C:
			s := smp.Last()
			logf("%v: %d acknowledged, %d unread; broker RSS %.0f MiB, %d open files (%d sockets)",
				time.Since(start).Round(time.Second), l.ackedCount(), l.unconsumed(), float64(s.RSS)/(1<<20), s.Files, s.Sockets)
		}
	}
	progress.Stop()
	rep.Interrupted = ctx.Err() != nil
	logf("stopping the hostile clients")
	wg.Wait()
	rep.Duration = time.Since(start).Round(time.Second)
	for i, k := range kinds {
		k.Outcomes = counts[i].snapshot()
	}
	rep.Kinds = kinds

	logf("stopping the producer")
	close(stopProducing)
	if err := <-produced; err != nil {
		rep.PairErrors = append(rep.PairErrors, err.Error())
	}
	logf("draining the consumer")
	close(consumerDone)
	if err := <-consumed; err != nil {
		rep.PairErrors = append(rep.PairErrors, err.Error())
	}
	l.mu.Lock()
	rep.Produced, rep.Acked, rep.Failed, rep.BufferFull = l.produced, len(l.acked), l.failed, l.buffered
	rep.Consumed, rep.Redelivered = len(l.consumed), l.redelivered
	for p, want := range l.acked {
		got, ok := l.consumed[p]
		switch {
		case !ok:
			rep.Lost++
		case got != want:
			rep.Mismatched++
		}
	}
	rep.ProducerErrors, rep.ConsumerErrors = maps.Clone(l.failures), maps.Clone(l.consumeErrors)
	l.mu.Unlock()

	logf("reading the log back")
	if lc, err := checkLog(context.Background(), bp.addr, cfg, l); err != nil {
		rep.LogCheckErr = err.Error()
	} else {
		rep.Log = lc
	}
	rep.Groups = checkGroups(bp.addr, bc.OffsetsRetention+2*bc.OffsetsRetentionCheckInterval+2*time.Second, e.groups)
	rep.Metrics, rep.MetricsNote = scrapeMetrics(cfg.MetricsURL)

	stopSampler()
	sampling.Wait()
	rep.Peaks = smp.Peaks()
	rep.RSSReference = rep.BaselineRSS + bc.QueuedMaxRequestBytes + bc.QueuedMaxResponseBytes
	logf("stopping the broker")
	if err := bp.stop(); err != nil {
		rep.BrokerExit = err.Error()
	}
	rep.Machine.LoadEnd = procstat.LoadAvg()
	if s, err := readLog(bp.logPath); err != nil {
		rep.LogNote = err.Error()
	} else {
		rep.LogSummary = s
	}
	return rep, nil
}

// createTopics creates the pair's topics (segment.bytes cfg.SegmentBytes)
// and the malformed-batch topic.
func createTopics(ctx context.Context, addr string, cfg Config, topics []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("brokersoak-setup"))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seg := strconv.FormatInt(cfg.SegmentBytes, 10)
	resps, err := adm.CreateTopics(ctx, int32(cfg.Partitions), 1, map[string]*string{"segment.bytes": &seg}, topics...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return fmt.Errorf("create the pair's topics: %w", err)
	}
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, malformedTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", malformedTopic, err)
	}
	return nil
}

// GroupCheck is what became of the churned groups.
type GroupCheck struct {
	Churned int // groups the churn committed offsets for
	// Due counts the churned groups whose offsets should have expired by
	// the end (last commit more than offsets_retention plus two check
	// intervals ago); Remaining, those of them the broker still lists.
	Due, Remaining int
	Listed         int // churned groups listed at the end
	Err            string
}

// checkGroups lists the broker's groups and counts the churned ones that
// should have expired but are still there.
func checkGroups(addr string, after time.Duration, g *churnLog) GroupCheck {
	gc := GroupCheck{Churned: g.count()}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("brokersoak-check"))
	if err != nil {
		gc.Err = err.Error()
		return gc
	}
	defer cl.Close()
	due := g.olderThan(time.Now().Add(-after))
	gc.Due = len(due)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrListGroupsRequest().RequestWith(ctx, cl)
	if err != nil {
		gc.Err = "ListGroups: " + err.Error()
		return gc
	}
	for _, grp := range resp.Groups {
		if strings.HasPrefix(grp.Group, churnGroupPrefix) {
			gc.Listed++
			if due[grp.Group] {
				gc.Remaining++
			}
		}
	}
	return gc
}

// scrapeMetrics reads factorywire_broker_limit_hits_total from url.
func scrapeMetrics(url string) (map[string]float64, string) {
	if url == "" {
		return nil, "not scraped (no -metrics-url)"
	}
	hc := http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return nil, "scrape failed: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "scrape failed: " + resp.Status
	}
	const prefix = `factorywire_broker_limit_hits_total{limit="`
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		limit, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[limit] = v
		}
	}
	if err := sc.Err(); err != nil {
		return out, "scrape failed: " + err.Error()
	}
	return out, ""
}
