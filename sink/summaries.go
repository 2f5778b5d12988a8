package sink

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/storage/mongots"
)

// The device status and the rollups are written beside the pipeline: a
// batch folds its samples into them in memory, and every
// summary_interval a write of what was folded since the last one starts
// on a goroutine of its own (startSummaries), while the next batches are
// written; it lands (landSummaries) between two batches. Its entries and
// rollups are copies, taken when it starts: the batches after it fold
// into the pipeline's own. Until it has landed, each partition's
// checkpoint stays at the lower of its hold and the write's (partState
// flushing), as it stayed at the hold while the write ran inside the
// batch. One write at a time.

// summaries is one write of status entries and rollups beside the
// pipeline.
type summaries struct {
	status []mongots.DeviceStatus
	groups []rollupGroup
	// statusOwner is the partition of each entry of status; owner that of
	// each rollup written, and live the pipeline's own rollup it is a
	// copy of (which batches may fold into meanwhile).
	statusOwner []tp
	owner       map[*mongots.Rollup]tp
	live        map[*mongots.Rollup]*mongots.Rollup
	// parts are the partitions whose holds the write took, as they were:
	// one revoked since (perhaps assigned again) is left alone.
	parts map[tp]*partState

	done chan struct{} // closed once the write has ended, err and conflicted set
	err  error
	// conflicted holds, per partition, the rollups another writer
	// changed since they were read ("<collection> <device>@<start>").
	conflicted map[tp]map[string]bool
}

// rollupGroup is the rollups of one collection and period.
type rollupGroup struct {
	coll string
	per  mongots.Period
	rs   []*mongots.Rollup
}

// summariesDue reports whether the next summaries write is due: no write
// in progress, and summary_interval passed since the last one started.
func (p *pipeline) summariesDue() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flight == nil && p.now().Sub(p.lastFlush) >= p.cfg.SummaryInterval
}

// startSummaries starts writing, beside the pipeline, every status entry
// and rollup folded since the last write, and reports whether it did: not
// while a write is in progress or a rebalance callback waits for one to
// end (revoking), nor when nothing is held. Each partition's hold becomes
// the write's (flushing). The write retries transient failures until ctx
// ends or a rebalance waits; landSummaries applies its outcome.
func (p *pipeline) startSummaries(ctx context.Context) bool {
	p.mu.Lock()
	if p.flight != nil || p.revoking > 0 {
		p.mu.Unlock()
		return false
	}
	f := &summaries{owner: map[*mongots.Rollup]tp{}, live: map[*mongots.Rollup]*mongots.Rollup{},
		parts: map[tp]*partState{}, done: make(chan struct{}), conflicted: map[tp]map[string]bool{}}
	type groupKey struct {
		coll string
		per  mongots.Period
	}
	byGroup := map[groupKey][]*mongots.Rollup{}
	for k, st := range p.parts {
		if st.hold < 0 && len(st.pending) == 0 && len(st.dirty) == 0 {
			continue
		}
		for _, u := range st.pending {
			f.status = append(f.status, u)
			f.statusOwner = append(f.statusOwner, k)
		}
		for _, per := range mongots.Periods {
			for _, r := range st.dirty[per.Name] {
				c := r.Clone()
				f.owner[c], f.live[c] = k, r
				g := groupKey{k.topic, per}
				byGroup[g] = append(byGroup[g], c)
			}
		}
		st.pending, st.dirty, st.flying = map[string]mongots.DeviceStatus{}, map[string]map[mongots.RollupKey]*mongots.Rollup{}, st.dirty
		st.flushing, st.hold = st.hold, -1
		f.parts[k] = st
	}
	p.lastFlush = p.now()
	if len(f.parts) == 0 {
		p.mu.Unlock()
		return false
	}
	p.flight = f
	p.mu.Unlock()

	order := make([]int, len(f.status))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(f.status[a].Topic, f.status[b].Topic), cmp.Compare(f.status[a].Sample.Device, f.status[b].Sample.Device))
	})
	status, owners := make([]mongots.DeviceStatus, len(order)), make([]tp, len(order))
	for i, j := range order {
		status[i], owners[i] = f.status[j], f.statusOwner[j]
	}
	f.status, f.statusOwner = status, owners
	for g, rs := range byGroup {
		slices.SortFunc(rs, func(a, b *mongots.Rollup) int {
			return cmp.Or(cmp.Compare(a.Device, b.Device), a.Start.Compare(b.Start))
		})
		f.groups = append(f.groups, rollupGroup{g.coll, g.per, rs})
	}
	slices.SortFunc(f.groups, func(a, b rollupGroup) int {
		return cmp.Or(cmp.Compare(a.coll, b.coll), cmp.Compare(a.per.Name, b.per.Name))
	})
	go func() {
		defer close(f.done)
		pause := p.gate.giveWay(giveWayBudget)
		f.err = p.retry(ctx, opSummaries, p.abandonSummaries, func(ctx context.Context) error {
			return f.write(mongots.WithPause(ctx, pause), p.store)
		})
	}()
	return true
}

// write writes the status entries, then the rollups per collection and
// period, noting the partitions of rollups refused for a conflict. A
// retry writes everything again: the rollups written have their revision
// raised, and are written over it.
func (f *summaries) write(ctx context.Context, st store) error {
	if len(f.status) > 0 {
		if err := st.UpdateStatus(ctx, f.status); err != nil {
			return fmt.Errorf("device status: %w", err)
		}
	}
	for _, g := range f.groups {
		conflicts, err := st.SaveRollups(ctx, g.coll, g.per, g.rs)
		if err != nil {
			return fmt.Errorf("rollups %s of %s: %w", g.per.Name, g.coll, err)
		}
		for _, k := range conflicts {
			for _, r := range g.rs {
				if r.Key() == k {
					owner := f.owner[r]
					if f.conflicted[owner] == nil {
						f.conflicted[owner] = map[string]bool{}
					}
					f.conflicted[owner][fmt.Sprintf("%s %s@%s", mongots.RollupCollection(g.coll, g.per), k.Device, k.Start.UTC().Format(time.RFC3339))] = true
				}
			}
		}
	}
	return nil
}

// abandonSummaries tells a failing summaries write to give up: a
// rebalance waits for it.
func (p *pipeline) abandonSummaries() bool {
	p.mu.Lock()
	revoking := p.revoking > 0
	p.mu.Unlock()
	return revoking || p.abandon()
}

// landSummaries applies the outcome of the summaries write in progress,
// once it has ended (waiting for that with wait), to the partitions this
// member still owns as they were when it started:
//
//   - written: the write's hold is released, and each rollup's revision
//     is raised as written;
//   - a rollup changed by another writer since it was read (a member
//     evicted from the group still finishing its work): its samples are
//     gone from memory, so the partition's rollups are forgotten and the
//     partition is to be consumed again (takeRewinds) from its hold, which
//     the checkpoint keeps until the rollups folded again are written;
//   - not written (given up for a rebalance, the end of the shutdown
//     timeout): its entries and rollups are held again, to be written
//     next time; one MongoDB refused for good is returned, and stops the
//     sink.
func (p *pipeline) landSummaries(wait bool) error {
	p.mu.Lock()
	f := p.flight
	p.mu.Unlock()
	if f == nil {
		return nil
	}
	if wait {
		<-f.done
	} else {
		select {
		case <-f.done:
		default:
			return nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flight = nil
	owned := func(k tp) *partState {
		if st := p.parts[k]; st != nil && st == f.parts[k] {
			return st
		}
		return nil
	}
	if f.err != nil {
		for i, u := range f.status {
			if st := owned(f.statusOwner[i]); st != nil {
				if _, newer := st.pending[u.Sample.Device]; !newer {
					st.pending[u.Sample.Device] = u
				}
			}
		}
		for c, r := range f.live {
			st := owned(f.owner[c])
			if st == nil {
				continue
			}
			per := c.Period.Name
			if st.dirty[per] == nil {
				st.dirty[per] = map[mongots.RollupKey]*mongots.Rollup{}
			}
			if st.dirty[per][r.Key()] == nil {
				st.dirty[per][r.Key()] = r // the pipeline's own: what it folded since included
			}
		}
	}
	for k := range f.parts {
		st := owned(k)
		if st == nil {
			continue
		}
		switch {
		case f.err != nil:
			st.hold = st.held()
		case len(f.conflicted[k]) > 0:
			st.hold = st.held()
			if st.hold >= 0 {
				p.rewinds[k] = st.hold
			}
			st.bins, st.dirty = map[string]map[string]*mongots.Rollup{}, map[string]map[mongots.RollupKey]*mongots.Rollup{}
			// The records consumed again read every rollup they fold
			// into: the conflicting ones are stored, and a bin later than
			// the one held may be too.
			st.loadAll = max(st.loadAll, st.floor)
			// Which rollups, so that a conflict that keeps coming back
			// (no other writer alive) can be told from a stale one.
			names := slices.Sorted(maps.Keys(f.conflicted[k]))
			p.log.Warn("rollups changed by another writer since they were read: consuming the partition again from its hold",
				"topic", k.topic, "partition", k.partition, "from", st.hold, "rollups", len(names), "first", names[0])
		}
		st.flushing, st.flying = -1, nil
	}
	if f.err == nil {
		for c, r := range f.live {
			if k := f.owner[c]; owned(k) != nil && len(f.conflicted[k]) == 0 {
				r.Rev = c.Rev
			}
		}
		return nil
	}
	if isFatal(f.err) {
		return fmt.Errorf("write status and rollups: %w", f.err)
	}
	p.log.Warn("status and rollups not written: written again later, the checkpoint held meanwhile", "err", f.err)
	return nil
}

// awaitSummaries waits, in a rebalance callback, for the summaries write
// in progress to end (a failing one gives up), and keeps another from
// starting meanwhile: nothing of a partition is written after it was
// revoked. The main loop lands the write.
func (p *pipeline) awaitSummaries() {
	p.mu.Lock()
	p.revoking++
	f := p.flight
	p.mu.Unlock()
	if f != nil {
		<-f.done
	}
	p.mu.Lock()
	p.revoking--
	p.mu.Unlock()
}

// waitSummaries waits for the summaries write in progress, if any, to
// end, without landing it: Run's last step, once its work context is
// canceled.
func (p *pipeline) waitSummaries() {
	p.mu.Lock()
	f := p.flight
	p.mu.Unlock()
	if f != nil {
		<-f.done
	}
}

// takeRewinds returns, and forgets, the offsets from which partitions
// must be consumed again after a rollup conflict.
func (p *pipeline) takeRewinds() map[string]map[int32]kgo.EpochOffset {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]map[int32]kgo.EpochOffset{}
	for k, o := range p.rewinds {
		if out[k.topic] == nil {
			out[k.topic] = map[int32]kgo.EpochOffset{}
		}
		out[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	p.rewinds = map[tp]int64{}
	return out
}

// holdOffsets lowers next, per partition, to the partition's hold: the
// checkpoint and the commit do not pass a sample whose status entry or
// rollups are not written yet. It remembers the offsets it lowered, for
// finish.
func (p *pipeline) holdOffsets(next map[string]map[int32]kgo.EpochOffset) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, parts := range next {
		for part, eo := range parts {
			k := tp{topic, part}
			delete(p.held, k)
			if st := p.parts[k]; st != nil && st.held() >= 0 && st.held() < eo.Offset {
				p.held[k] = eo
				parts[part] = kgo.EpochOffset{Epoch: -1, Offset: st.held()}
			}
		}
	}
}

// wake says until when an idle sink waits for records before it calls
// finish: until the summaries write in progress ends (done), until the
// next is due while anything is held (at), or not at all while offsets
// held back can be saved now. ok is false when there is nothing to wait
// for.
func (p *pipeline) wake() (at time.Time, done <-chan struct{}, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flight != nil {
		return time.Time{}, p.flight.done, true
	}
	for _, st := range p.parts {
		if st.held() >= 0 || len(st.pending) > 0 || len(st.dirty) > 0 {
			return p.lastFlush.Add(p.cfg.SummaryInterval), nil, true
		}
	}
	if len(p.held) > 0 {
		return p.now(), nil, true
	}
	return time.Time{}, nil, false
}

// finish is called when the sink is idle (wake) or stops. It lands the
// summaries write in progress (when stopping, once it has ended), then,
// if any status entry or rollup is held, starts the next write when it
// is due (when stopping, writes them and waits); once nothing is held it
// saves the offsets the holds kept back and returns them, to commit. On
// failure the checkpoint stays held: those records are consumed again.
// It returns an error only for a failure that stops the sink.
func (p *pipeline) finish(ctx context.Context, stopping bool) (map[string]map[int32]kgo.EpochOffset, error) {
	if err := p.landSummaries(stopping); err != nil {
		return nil, err
	}
	if stopping {
		if p.startSummaries(ctx) {
			if err := p.landSummaries(true); err != nil {
				return nil, err
			}
		}
	} else if p.summariesDue() && p.startSummaries(ctx) {
		return nil, nil // saved once it has landed
	}
	p.mu.Lock()
	quiet := map[tp]kgo.EpochOffset{}
	for k, eo := range p.held {
		if st := p.parts[k]; st != nil && st.held() < 0 {
			quiet[k] = eo
		}
	}
	p.mu.Unlock()
	if stopping {
		defer p.lowerMarks(ctx, nil) // after the offsets are saved
	}
	if len(quiet) == 0 {
		return nil, nil
	}
	next := map[string]map[int32]kgo.EpochOffset{}
	for k, eo := range quiet {
		if next[k.topic] == nil {
			next[k.topic] = map[int32]kgo.EpochOffset{}
		}
		next[k.topic][k.partition] = eo
	}
	offsets := plainOffsets(next)
	err := p.retry(ctx, opSave, nil, func(ctx context.Context) error {
		return p.store.SaveTopicOffsets(ctx, p.cfg.Kafka.Group, offsets)
	})
	if err != nil {
		p.log.Warn("offsets not saved: their records are consumed again after a restart",
			"topics", strings.Join(slices.Sorted(maps.Keys(offsets)), ","), "err", err)
		next = nil
	} else {
		p.markSaved(offsets)
	}
	// Saved or not, they are not tried again until a batch holds them
	// back again: an idle sink does not spin on a failing save.
	p.mu.Lock()
	for k, eo := range quiet {
		if cur, ok := p.held[k]; ok && cur == eo {
			delete(p.held, k)
		}
	}
	p.mu.Unlock()
	return next, nil
}

// giveWayBudget is how long, at most, one summaries write waits in all
// for batches to end (batchGate.giveWay): at a low rate a batch's write
// takes a few milliseconds and the summaries wait for each one they meet;
// under load, when batches come back to back, they wait at most this
// long and then take turns with them command by command.
const giveWayBudget = time.Second

// batchGate lets the summaries write beside the pipeline give way to the
// batches. On MongoDB's stand-in (SQLite, one writer at a time) a batch's
// insert that finds the status or rollup updates holding the lock backs
// off for 1, 2, 5, 10, … up to 100 ms at a time, and the updates, one
// after the other, kept taking the lock first: samples waited 50–100 ms
// more behind a summaries write. A batch holds the gate while its samples
// are written (hold, release, only from the pipeline's goroutine); the
// summaries write waits before each of its commands for the batch holding
// it to end (giveWay).
type batchGate struct {
	mu   sync.Mutex
	done chan struct{} // closed when the batch holding the gate ends; nil when none does
}

func (g *batchGate) hold() {
	g.mu.Lock()
	g.done = make(chan struct{})
	g.mu.Unlock()
}

func (g *batchGate) release() {
	g.mu.Lock()
	close(g.done)
	g.done = nil
	g.mu.Unlock()
}

// giveWay returns the pause (mongots.WithPause) of one summaries write:
// each call waits for the batch holding the gate, if any, to end, until
// budget is spent over all the calls, or ctx ends (its error).
func (g *batchGate) giveWay(budget time.Duration) func(context.Context) error {
	left := budget
	return func(ctx context.Context) error {
		g.mu.Lock()
		done := g.done
		g.mu.Unlock()
		if done == nil || left <= 0 {
			return nil
		}
		start := time.Now()
		t := time.NewTimer(left)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		left -= time.Since(start)
		return nil
	}
}
