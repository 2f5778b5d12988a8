package broker

import (
	"context"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// startScrub runs, when Config.ScrubOnStart is set, a scrub of every
// partition's log (commitlog.Scrub: read-only, beside the partition's own
// readers and appends) in a goroutine the broker owns: Shutdown stops it
// and waits for it. Each damaged range is logged at error level and
// counted in factorywire_broker_scrub_corrupt_ranges_total; one line sums
// up the scrub.
func (b *Broker) startScrub() {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.scrubAll(b.ctx)
	}()
}

// scrubAll scrubs the partitions open now and the committed offsets' log,
// one at a time, so that it holds
// one read window and one file at a time.
func (b *Broker) scrubAll(ctx context.Context) {
	parts := b.allPartitions()
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].topic != parts[j].topic {
			return parts[i].topic < parts[j].topic
		}
		return parts[i].index < parts[j].index
	})
	if b.groups != nil {
		// The committed offsets' log too, as partition 0 of
		// __consumer_offsets.
		parts = append(parts, &partition{topic: offsetsDir, dir: filepath.Join(b.cfg.DataDir, offsetsDir)})
	}
	start := time.Now()
	var ranges, batches, bytes int64
	failed := 0
	b.log.Info("scrub started", "partitions", len(parts))
	for i, p := range parts {
		r, err := commitlog.Scrub(ctx, p.dir, commitlog.ScrubOptions{})
		if ctx.Err() != nil {
			b.log.Info("scrub stopped by shutdown", "partitions_left", len(parts)-i)
			return
		}
		if err != nil {
			// The partition was deleted, or a file cannot be read:
			// the partition's own reads report the latter.
			b.log.Warn("scrub of a partition failed", "topic", p.topic, "partition", p.index, "err", err)
			failed++
			continue
		}
		batches += r.Batches
		bytes += r.Bytes
		for _, d := range r.Damaged() {
			ranges++
			b.metrics.scrubCorruptRanges.WithLabelValues(p.topic, strconv.Itoa(int(p.index))).Inc()
			b.log.Error("scrub found a damaged range; stop the broker and run broker repair",
				"topic", p.topic, "partition", p.index, "file", d.Segment, "pos", d.Start, "bytes", d.End-d.Start,
				"first_offset", d.FirstOffset, "last_offset", d.LastOffset, "at_end", d.AtEnd, "reason", d.Err.Err)
		}
	}
	attrs := []any{"partitions", len(parts), "damaged_ranges", ranges, "failed_partitions", failed,
		"batches", batches, "bytes", bytes, "took", time.Since(start).Round(time.Millisecond)}
	if ranges > 0 || failed > 0 {
		b.log.Warn("scrub finished", attrs...)
		return
	}
	b.log.Info("scrub finished", attrs...)
}
