package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/recordbatch"
	"github.com/factorywire/factorywire/storage/commitlog"
)

// forwardChunk is the most spool bytes the forwarder produces at a time.
const forwardChunk = 1 << 20

// forwarder produces what the spool holds, topic by topic, in spool order:
// one goroutine per topic reads the records above the topic's checkpoint,
// produces them (key = device id, acks=all, idempotent), waits for every
// acknowledgement, then moves the checkpoint past them. Produce errors are
// retried from the same checkpoint after a backoff, so nothing is skipped;
// a restart can produce again what was acknowledged after the last
// checkpoint (at least once: the samples' (device, seq) identify repeats).
type forwarder struct {
	spool   *Spool
	client  *kgo.Client
	log     *slog.Logger
	metrics *metrics
	// factory and user (the SASL user, "" without SASL) name what to
	// grant when the cluster refuses the produces.
	factory, user string
	// deliveryTimeout bounds one forwarding attempt's produces
	// (KafkaConfig.DeliveryTimeout); 0: unbounded.
	deliveryTimeout time.Duration

	running map[string]bool
	wg      sync.WaitGroup

	mu    sync.Mutex
	state map[string]*forwardState // by topic
}

// forwardState is what /readyz reads of one topic's forwarding.
type forwardState struct {
	waitingSince time.Time // the oldest produce not yet answered; zero when none
	failingSince time.Time // the first of the failed attempts in a row; zero when the last succeeded
	lastErr      error     // the last attempt's error, while failing
}

// setState updates topic's forwardState under f.mu.
func (f *forwarder) setState(topic string, update func(*forwardState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == nil {
		f.state = map[string]*forwardState{}
	}
	st := f.state[topic]
	if st == nil {
		st = &forwardState{}
		f.state[topic] = st
	}
	update(st)
}

// stalled describes each topic whose samples have waited for the broker's
// acknowledgement, or failed to be produced, for longer than after: the
// reason /readyz gives for not being ready.
func (f *forwarder) stalled(now time.Time, after time.Duration) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, topic := range slices.Sorted(maps.Keys(f.state)) {
		st := f.state[topic]
		switch {
		case !st.failingSince.IsZero() && now.Sub(st.failingSince) > after:
			out = append(out, fmt.Sprintf("%s: produce failing for %s: %v", topic, now.Sub(st.failingSince).Round(100*time.Millisecond), st.lastErr))
		case !st.waitingSince.IsZero() && now.Sub(st.waitingSince) > after:
			out = append(out, fmt.Sprintf("%s: no acknowledgement for %s", topic, now.Sub(st.waitingSince).Round(100*time.Millisecond)))
		}
	}
	return out
}

// run forwards every topic of the spool, including topics that appear while
// it runs, until ctx ends.
func (f *forwarder) run(ctx context.Context) {
	f.running = map[string]bool{}
	for {
		appended := f.spool.appended()
		for _, name := range f.spool.Topics() {
			if f.running[name] {
				continue
			}
			f.running[name] = true
			t, err := f.spool.topic(name)
			if err != nil {
				f.log.Error("forwarder: open spool topic", "topic", name, "err", err)
				continue
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.forwardTopic(ctx, t)
			}()
		}
		select {
		case <-appended:
		case <-ctx.Done():
			f.wg.Wait()
			return
		}
	}
}

// forwardTopic is one topic's loop. A failure is logged when it starts
// and when its error changes, not at every retry (each retry is counted in
// produce_errors_total), and the recovery once.
func (f *forwarder) forwardTopic(ctx context.Context, t *spoolTopic) {
	backoff := 100 * time.Millisecond
	var (
		lastErr string // the failure logged, "" while forwarding works
		retries int
	)
	for ctx.Err() == nil {
		appended := f.spool.appended()
		pos := t.position()
		end := t.log().DurableOffset()
		if pos >= end {
			// Caught up: write a checkpoint held back by
			// checkpointEvery, so the spool shrinks now.
			if err := t.advance(pos, nil, true); err != nil {
				f.log.Error("forwarder: checkpoint", "topic", t.name, "err", err)
			}
			f.spool.freed()
			select {
			case <-appended: // or, with sync "interval", fsynced
			case <-ctx.Done():
			}
			continue
		}
		f.setState(t.name, func(st *forwardState) { st.waitingSince = time.Now() })
		err := f.forwardChunk(ctx, t, pos, end)
		f.setState(t.name, func(st *forwardState) {
			st.waitingSince = time.Time{}
			if err == nil {
				st.failingSince, st.lastErr = time.Time{}, nil
			} else if st.lastErr = err; st.failingSince.IsZero() {
				st.failingSince = time.Now()
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var corrupt *commitlog.CorruptionError
			if errors.As(err, &corrupt) {
				// Move the damage aside now, as opening the spool
				// would, and forward the rest without a restart.
				f.log.Error("forwarder: a spool segment is corrupt; moving the damaged range aside, polling goes on into the spool",
					"topic", t.name, "file", corrupt.Segment, "byte", corrupt.Offset, "err", err)
				n, rerr := f.spool.repairLive(t)
				if rerr == nil && n > 0 {
					backoff = 100 * time.Millisecond
					continue // repair logged and counted each range
				}
				if rerr == nil {
					rerr = errors.New("the repair found no damaged range")
				}
				err = fmt.Errorf("%w; repair: %w", err, rerr)
			}
			f.metrics.produceErrors.WithLabelValues(t.name).Inc()
			retries++
			level := slog.LevelDebug
			if msg := err.Error(); msg != lastErr {
				level, lastErr = slog.LevelWarn, msg
			}
			if corrupt != nil {
				f.log.Log(ctx, max(level, slog.LevelError), "forwarder: a corrupt spool segment could not be repaired; forwarding this topic waits and retries, polling goes on into the spool",
					"topic", t.name, "file", corrupt.Segment, "byte", corrupt.Offset, "retry_in", backoff, "err", err,
					"fix", "restart the gateway: opening the spool repairs it again; or move the segment aside")
			} else if hint := f.authorizationHint(t.name, err); hint != "" {
				if level == slog.LevelWarn {
					level = slog.LevelError
				}
				f.log.Log(ctx, level, "forwarder: the cluster does not authorize this gateway's produces; the samples stay in the spool and are retried", "topic", t.name, "offset", pos, "retry_in", backoff, "err", err, "fix", hint)
			} else {
				f.log.Log(ctx, level, "forwarder: produce failed; retrying from the checkpoint", "topic", t.name, "offset", pos, "retry_in", backoff, "err", err)
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		if lastErr != "" {
			f.log.Info("forwarder: producing again", "topic", t.name, "failed_attempts", retries)
			lastErr, retries = "", 0
		}
		backoff = 100 * time.Millisecond
	}
}

// authorizationHint says what to grant when err is the cluster refusing
// the gateway's user the topic (TOPIC_AUTHORIZATION_FAILED) or idempotent
// produces (CLUSTER_AUTHORIZATION_FAILED on InitProducerId); "" for other
// errors.
func (f *forwarder) authorizationHint(topic string, err error) string {
	who := "User:" + f.user
	if f.user == "" {
		who = "this gateway's principal"
	}
	switch {
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return fmt.Sprintf("allow %s WRITE on topic %s: broker acls grant-factory --factory %s --gateway-user %s (kafka-acls.sh: --allow-principal %s --operation Write --operation Describe --topic %s. --resource-pattern-type prefixed)",
			who, topic, f.factory, orUser(f.user), who, f.factory)
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Sprintf("allow %s IDEMPOTENT_WRITE on the cluster, which idempotent produces need: broker acls grant-factory --factory %s --gateway-user %s (kafka-acls.sh: --allow-principal %s --operation IdempotentWrite --cluster)",
			who, f.factory, orUser(f.user), who)
	}
	return ""
}

func orUser(user string) string {
	if user == "" {
		return "USER"
	}
	return user
}

// forwardChunk produces the records of t from pos, up to a chunk, and
// checkpoints past them once all are acknowledged.
func (f *forwarder) forwardChunk(ctx context.Context, t *spoolTopic, pos, end int64) error {
	data, err := t.read(pos, forwardChunk, end)
	if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		return nil // dropped meanwhile: position() moves on
	}
	if err != nil {
		return err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		last     = map[string][]byte{} // device -> value of its last record
		n        int
		// Per chunk rather than per record: the records, allocated
		// 256 at a time; the headers, shared by the records that have
		// the same (all of them: the spool writes one set); and the
		// promise.
		block   []kgo.Record
		headers []kgo.RecordHeader
	)
	promise := func(_ *kgo.Record, err error) {
		defer wg.Done()
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	// The records' context bounds their delivery: kgo fails them once it
	// is done, at the first point where that is safe for an idempotent
	// producer. Every callback is still waited for below.
	pctx := ctx
	if f.deliveryTimeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, f.deliveryTimeout)
		defer cancel()
	}
	next, err := eachRecord(data, func(offset int64, r recordbatch.Record) error {
		if offset < pos {
			return nil
		}
		if len(block) == cap(block) {
			block = make([]kgo.Record, 0, 256)
		}
		if !sameHeaders(headers, r.Headers) {
			headers = make([]kgo.RecordHeader, len(r.Headers))
			for i, h := range r.Headers {
				headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		block = append(block, kgo.Record{
			Topic:     t.name,
			Key:       r.Key,
			Value:     r.Value,
			Headers:   headers,
			Timestamp: time.UnixMilli(r.Timestamp),
		})
		last[string(r.Key)] = r.Value
		n++
		wg.Add(1)
		f.client.Produce(pctx, &block[len(block)-1], promise)
		return nil
	})
	// Wait for every acknowledgement, or for the stop: a produce the
	// cluster keeps refusing (NOT_ENOUGH_REPLICAS) is retried by the
	// client until it is closed, and an idempotent producer does not give
	// up a record it may have written when ctx ends. The records stay in
	// the spool, unacknowledged; closing the client answers the callbacks.
	acked := make(chan struct{})
	go func() {
		wg.Wait()
		close(acked)
	}()
	select {
	case <-acked:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	if firstErr != nil {
		if errors.Is(firstErr, context.DeadlineExceeded) {
			return fmt.Errorf("not delivered within kafka.delivery_timeout (%s): %w", f.deliveryTimeout, firstErr)
		}
		return firstErr
	}
	seqs := make(map[string]uint64, len(last))
	for dev, value := range last {
		seq, err := spooledSeq(value)
		if err != nil {
			f.log.Error("forwarder: a spooled sample does not decode", "topic", t.name, "device", dev, "err", err)
			continue
		}
		seqs[dev] = seq
	}
	if err := t.advance(next, seqs, false); err != nil {
		return err
	}
	f.metrics.produced.WithLabelValues(t.name).Add(float64(n))
	f.spool.freed()
	return nil
}

// sameHeaders reports whether a record built with headers has the spooled
// record's headers hs (kgo reads a record's headers, never changes them).
func sameHeaders(headers []kgo.RecordHeader, hs []recordbatch.Header) bool {
	if headers == nil || len(headers) != len(hs) {
		return false
	}
	for i, h := range hs {
		if headers[i].Key != h.Key || !bytes.Equal(headers[i].Value, h.Value) {
			return false
		}
	}
	return true
}
