package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// Fetch v4–12.
//
// Batches are served exactly as stored, up to the high watermark (with flush
// "always", the durable offset). A response holds at most the request's
// MaxBytes and the broker's FetchMaxBytes, except that the first partition
// with data gets at least one whole batch even if it exceeds those limits or
// the partition's, as in Kafka, so a consumer never stalls on a large
// batch. The request waits up to MaxWaitMillis until MinBytes are available,
// and returns at once when a partition has an error.
//
// The record bytes of a response are granted from the broker's response
// budget (queued_max_response_bytes) when it is built and given back once
// it is written or dropped. A fetch that finds the budget short waits, up
// to MaxWaitMillis, until the budget has as many bytes free as the records
// it left out need (the batch it read and could not keep), without reading
// them again meanwhile, then returns what fits, possibly no records at
// all. A first batch larger than the whole budget is served when no other
// response holds any of it.
//
// Fetch sessions (KIP-227, v7+) are not kept: every response carries
// session id 0, which tells the client to send full requests; a request
// naming a session id is answered FETCH_SESSION_ID_NOT_FOUND. There are no
// transactions, so the last stable offset equals the high watermark and no
// aborted transactions are reported. Leader epochs are always 0. A
// partition answered with an error (OFFSET_OUT_OF_RANGE included) has its
// high watermark, last stable offset and log start offset at -1, as in
// Kafka.
//
// Authorization: READ on each topic (CLUSTER_ACTION on the cluster for a
// request from a follower, replica id >= 0), else its partitions are
// answered TOPIC_AUTHORIZATION_FAILED; a request whose every partition is
// refused is answered at once.

func init() { regKey(int16(kmsg.Fetch), 4, 12, handleFetch) }

func handleFetch(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.FetchRequest)
	// Decided here, on the reader goroutine, once per request: a long
	// poll does not see ACL changes made while it waits.
	var denied map[string]bool
	if b.authz != nil {
		follower := req.ReplicaID >= 0 && !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationClusterAction)
		for _, rt := range req.Topics {
			if follower || !b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, rt.Topic) {
				if denied == nil {
					denied = map[string]bool{}
				}
				denied[rt.Topic] = true
			}
		}
	}
	return reply{finish: func(ctx context.Context) kmsg.Response {
		resp, g := b.fetch(ctx, req, denied)
		// The writer releases the grant once the response is written.
		c.hold(g)
		if r, ok := resp.(*kmsg.FetchResponse); ok {
			b.metrics.traffic.fetched(r)
		}
		return resp
	}}, nil
}

// fetch answers req, waiting as the request asks, with the topics in denied
// refused (TOPIC_AUTHORIZATION_FAILED). The grant holds the response's
// record bytes from the response budget.
func (b *Broker) fetch(ctx context.Context, req *kmsg.FetchRequest, denied map[string]bool) (kmsg.Response, grant) {
	if req.Version >= 7 {
		code := int16(0)
		switch {
		case req.SessionID != 0:
			code = kerr.FetchSessionIDNotFound.Code
		case req.SessionEpoch != -1 && req.SessionEpoch != 0:
			code = kerr.InvalidFetchSessionEpoch.Code
		}
		if code != 0 {
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			resp.ErrorCode = code
			return resp, grant{}
		}
	}
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	// A hit is counted once per fetch, when it returns records cut short
	// by the budget or waits for bytes that its records need.
	counted := false
	count := func() {
		if !counted {
			counted = true
			b.limits.hit(limitQueuedResponseBytes, "fetch response cut short: queued response bytes exhausted",
				"bytes_in_use", b.responseBudget.inUse(), "queued_max_response_bytes", b.cfg.QueuedMaxResponseBytes)
		}
	}
	// need is the free response budget the records left out need, once
	// an attempt has read them; until then more than the attempt got.
	need := int64(1)
	for {
		// Take the wake-up channel before reading, so data that
		// arrives between the read and the wait is not missed.
		wake := b.data.wait()
		f := b.fetchOnce(req, denied)
		// A response the budget left empty waits for budget even if
		// it met MinBytes; one with records is sent.
		if f.final || timeout == nil || (f.bytes >= int(req.MinBytes) && !(f.short && f.bytes == 0)) {
			if f.short {
				count()
			}
			return f.resp, f.g
		}
		// Nobody will read this response: give its bytes back before
		// waiting.
		f.g.release()
		if !f.short {
			select {
			case <-wake:
				continue
			case <-timeout:
			case <-ctx.Done():
			}
			f = b.fetchOnce(req, denied)
			if f.short {
				count()
			}
			return f.resp, f.g
		}
		// Short of budget: wait until the budget has what the records
		// left out need, without reading them again meanwhile. Every
		// release wakes every waiting fetch, so one that read and
		// dropped its records on each wake-up would wake the others
		// in turn, reading a batch per round until its max wait. New
		// data does not help while the budget is short.
		if f.need > 0 {
			need = f.need
		} else {
			need = max(need, int64(f.bytes)+1)
		}
		ended := false
		for !ended {
			// Take the channel before looking, so a release in
			// between is not missed.
			freed := b.responseBudget.released()
			if b.responseBudget.free() >= need {
				break
			}
			if f.need > 0 {
				// The budget lacks bytes for records read and
				// left out: a hit. An attempt that found nothing
				// free may only have met other fetches'
				// reservations, which they shrink to their
				// records at once; it waits for them uncounted.
				count()
			}
			select {
			case <-freed:
			case <-timeout:
				ended = true
			case <-ctx.Done():
				ended = true
			}
		}
		if ended {
			f = b.fetchOnce(req, denied)
			if f.short {
				count()
			}
			return f.resp, f.g
		}
	}
}

// fetched is one attempt at a fetch response.
type fetched struct {
	resp  *kmsg.FetchResponse
	bytes int  // record bytes in resp
	final bool // a partition error means it must be sent without waiting
	short bool // the budget left out records that were available
	// need is the free response budget an attempt needs to include the
	// records this one left out, when it read them (0 when it left them
	// out unread).
	need int64
	g    grant // holds the record bytes
}

// fetchOnce reads what is available now and fits in the response budget.
// The topics in denied are refused; when that is every partition, the
// response is final.
func (b *Broker) fetchOnce(req *kmsg.FetchRequest, denied map[string]bool) fetched {
	f := fetched{resp: req.ResponseKind().(*kmsg.FetchResponse)}
	want := int(min(req.MaxBytes, b.cfg.FetchMaxBytes))
	f.g, _ = b.responseBudget.acquireUpTo(int64(max(want, 0)))
	g := &f.g
	remaining := int(g.n)
	allowed := false
	for _, rt := range req.Topics {
		ot := kmsg.NewFetchResponseTopic()
		ot.Topic = rt.Topic
		ot.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			op := kmsg.NewFetchResponseTopicPartition()
			op.Partition = rp.Partition
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
			op.PreferredReadReplica = -1
			op.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			if denied[rt.Topic] {
				op.ErrorCode = kerr.TopicAuthorizationFailed.Code
				op.RecordBatches = []byte{}
				ot.Partitions = append(ot.Partitions, op)
				continue
			}
			allowed = true
			// Only the first partition with data may exceed the
			// limits, and only if the budget has the bytes: once it
			// fell short, no other partition reads a batch only to
			// drop it.
			first := f.bytes == 0 && !f.short && (g.n > 0 || want <= 0)
			data, code, left, dropped := b.fetchPartition(rt.Topic, rp, &op, remaining, first)
			if code != 0 {
				op.ErrorCode = code
				f.final = true
			}
			if over := len(data) - max(remaining, 0); over > 0 && !g.grow(int64(over)) {
				// A batch larger than the whole budget (a topic's
				// max.message.bytes may allow it) is served when
				// nothing else holds the budget, or never.
				if int64(len(data)) <= g.b.capacity || !g.growAll() {
					if f.need == 0 {
						f.need = int64(f.bytes + len(data))
					}
					data, f.short = nil, true
				}
			}
			if left && g.n < int64(want) {
				f.short = true
				if f.need == 0 && dropped > 0 {
					f.need = int64(f.bytes + dropped)
				}
			}
			if data == nil {
				// An empty record set is length 0, never null
				// (-1): kafka-go and librdkafka reject a null one.
				data = []byte{}
			}
			op.RecordBatches = data
			f.bytes += len(data)
			remaining -= len(data)
			ot.Partitions = append(ot.Partitions, op)
		}
		f.resp.Topics = append(f.resp.Topics, ot)
	}
	if !allowed && len(denied) > 0 {
		f.final = true
	}
	g.shrink(int64(f.bytes))
	f.need = min(f.need, g.b.capacity)
	return f
}

// fetchPartition reads the records of one partition that fit in remaining
// bytes (at least one batch if first). left tells that records were left
// out for lack of remaining bytes; dropped is the size of what was read and
// left out for that reason (0 if nothing was read).
func (b *Broker) fetchPartition(topicName string, rp kmsg.FetchRequestTopicPartition, op *kmsg.FetchResponseTopicPartition, remaining int, first bool) (data []byte, code int16, left bool, dropped int) {
	p := b.partition(topicName, rp.Partition)
	if p == nil {
		return nil, kerr.UnknownTopicOrPartition.Code, false, 0
	}
	if p.offline != nil {
		return nil, kerr.KafkaStorageError.Code, false, 0
	}
	switch {
	case rp.CurrentLeaderEpoch > 0:
		return nil, kerr.UnknownLeaderEpoch.Code, false, 0
	case rp.CurrentLeaderEpoch < -1:
		return nil, kerr.FencedLeaderEpoch.Code, false, 0
	}
	hwm := p.highWatermark()
	start := p.log.StartOffset()
	if rp.FetchOffset < start || rp.FetchOffset > p.log.EndOffset() {
		// As Kafka, the watermarks of a partition in error are -1:
		// the client learns the range from ListOffsets.
		return nil, kerr.OffsetOutOfRange.Code, false, 0
	}
	op.HighWatermark, op.LastStableOffset, op.LogStartOffset = hwm, hwm, start
	if rp.FetchOffset >= hwm {
		return nil, 0, false, 0
	}
	if !first && remaining <= 0 {
		return nil, 0, true, 0
	}
	limit := min(int(rp.PartitionMaxBytes), remaining)
	if limit <= 0 && !first {
		return nil, 0, false, 0
	}
	data, err := p.log.Read(rp.FetchOffset, max(limit, 1), hwm)
	switch {
	case errors.Is(err, commitlog.ErrOffsetOutOfRange):
		// Retention moved the log start between the check and the read.
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
		return nil, kerr.OffsetOutOfRange.Code, false, 0
	case err != nil:
		p.faults.readFailed(rp.FetchOffset, err)
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
		return nil, storageErrorCode(err), false, 0
	}
	if !first && len(data) > limit {
		// Read returns at least one batch; only the first partition
		// with data may exceed its limits.
		if limit == remaining {
			return nil, 0, true, len(data)
		}
		return nil, 0, false, 0
	}
	return data, 0, false, 0
}
