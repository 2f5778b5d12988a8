package broker

import (
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// coordinator is the group coordinator: the registry of consumer groups and
// the store of their committed offsets. This broker coordinates every
// group. Each group's state is owned by the group's goroutine; the
// coordinator's own goroutine (expireLoop) expires offsets and deletes
// empty groups every OffsetsRetentionCheckInterval, acting on a group's
// state only through the group's goroutine.
type coordinator struct {
	cfg     Config
	log     *slog.Logger
	offsets *offsetStore
	metrics *metrics
	limits  *limits       // nil in tests that build a coordinator alone
	quit    chan struct{} // closed by close
	expired chan struct{} // closed when expireLoop returns

	mu     sync.Mutex
	groups map[string]*group
}

// maxGroupIDLength bounds a group id; a longer one is INVALID_GROUP_ID.
const maxGroupIDLength = 1024

// newCoordinator returns the coordinator of the groups whose offsets are
// in offsets, and starts its expiry goroutine; close stops it.
func newCoordinator(cfg Config, log *slog.Logger, offsets *offsetStore, m *metrics) *coordinator {
	c := &coordinator{
		cfg: cfg, log: log, offsets: offsets, metrics: m,
		quit: make(chan struct{}), expired: make(chan struct{}),
		groups: map[string]*group{},
	}
	go c.expireLoop()
	return c
}

// group returns the named group, creating it (Empty) when create is set. A
// group created while it has committed offsets (one restored from the
// offset store after a restart, whose membership was not persisted) is
// Empty since its latest commit.
func (c *coordinator) group(id string, create bool) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[id]
	if g == nil && create {
		g = newGroup(c, id, c.offsets.lastCommit(id))
		c.groups[id] = g
	}
	return g
}

// remove takes a group that its goroutine has just made Dead out of the
// registry and ends its goroutine. Only the caller that made it Dead calls
// remove, once.
func (c *coordinator) remove(g *group) {
	c.mu.Lock()
	if c.groups[g.id] == g {
		delete(c.groups, g.id)
	}
	c.mu.Unlock()
	close(g.kill)
}

// do runs fn on g's goroutine and waits for it. It returns false if the
// broker is shutting down or the group was deleted.
func (g *group) do(fn func()) bool {
	done := make(chan struct{})
	if !g.post(func() { fn(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-g.c.quit:
		return false
	case <-g.done:
		return false
	}
}

// delete removes an empty group and its committed offsets. It returns a
// Kafka error code.
func (c *coordinator) delete(id string) int16 {
	g := c.group(id, false)
	if g != nil {
		code, gone := int16(0), false
		if !g.do(func() {
			switch {
			case g.state == groupDead:
				gone = true // deleted meanwhile (expired)
			case len(g.members) > 0:
				code = kerr.NonEmptyGroup.Code
			default:
				g.state = groupDead
			}
		}) {
			return kerr.CoordinatorNotAvailable.Code
		}
		if code != 0 {
			return code
		}
		if gone {
			g = nil
		} else {
			c.remove(g)
		}
	}
	offsets := c.offsets.group(id)
	if g == nil && len(offsets) == 0 {
		return kerr.GroupIDNotFound.Code
	}
	var changes []offsetChange
	for k := range offsets {
		changes = append(changes, offsetChange{key: k})
	}
	if err := c.offsets.commit(changes); err != nil {
		c.log.Error("delete group offsets", "group", id, "err", err)
		return kerr.KafkaStorageError.Code
	}
	return 0
}

// listing is one group as ListGroups and DescribeGroups report it.
type listing struct {
	id, protocolType, state string
}

// list returns every group: those with members or state, and those that
// only have committed offsets (Empty), sorted by id.
func (c *coordinator) list() []listing {
	c.mu.Lock()
	gs := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		gs = append(gs, g)
	}
	c.mu.Unlock()
	seen := map[string]bool{}
	var out []listing
	for _, g := range gs {
		var l listing
		if g.do(func() { l = listing{g.id, g.protocolType, g.state.String()} }) {
			out = append(out, l)
			seen[g.id] = true
		}
	}
	for id := range c.offsets.groups() {
		if !seen[id] {
			out = append(out, listing{id: id, state: groupEmpty.String()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// close stops the expiry goroutine and every group's goroutine, and waits
// for them.
func (c *coordinator) close() {
	close(c.quit)
	<-c.expired
	c.mu.Lock()
	gs := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		gs = append(gs, g)
	}
	c.mu.Unlock()
	for _, g := range gs {
		<-g.done
	}
}

// expireLoop runs expire every OffsetsRetentionCheckInterval until close.
func (c *coordinator) expireLoop() {
	defer close(c.expired)
	t := time.NewTicker(c.cfg.OffsetsRetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			c.expire(time.Now())
		}
	}
}

// expire deletes the committed offsets that expired at now and then the
// groups left Empty without offsets, as Kafka's offsets.retention.minutes
// (KIP-211, GroupMetadata.removeExpiredOffsets): see group.expiredOffsets
// for which offsets expire when. A group is deleted (Dead, out of
// ListGroups and DescribeGroups, its goroutine ended) once it is Empty,
// without pending member ids, and without offsets; a group that only has
// offsets in the store (after a restart) is gone when they expire. Each
// expired group's offsets and each deletion are logged at info and counted
// (factorywire_broker_expired_offsets_total,
// factorywire_broker_deleted_groups_total).
//
// It works in three steps so that the tombstones of a whole pass share one
// fsync: each group picks its expired offsets on its goroutine; the store
// deletes them, keeping any committed again meanwhile; each Empty group
// then checks on its goroutine that it still has no members nor offsets
// before it goes Dead. A commit accepted before the group went Dead may
// still be stored afterwards: its group then only has offsets, as after a
// restart, and they expire in turn.
func (c *coordinator) expire(now time.Time) {
	c.mu.Lock()
	gs := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		gs = append(gs, g)
	}
	c.mu.Unlock()
	cutoff := now.UnixMilli() - c.cfg.OffsetsRetention.Milliseconds()
	expired := map[offsetKey]committedOffset{}
	var empty []*group
	hasObject := make(map[string]bool, len(gs))
	for _, g := range gs {
		hasObject[g.id] = true
		isEmpty := false
		if !g.do(func() {
			if g.state == groupDead {
				return
			}
			isEmpty = g.state == groupEmpty
			for k, v := range g.expiredOffsets(c.offsets.group(g.id), cutoff) {
				expired[k] = v
			}
		}) {
			continue // shutting down, or deleted meanwhile
		}
		if isEmpty {
			empty = append(empty, g)
		}
	}
	// Groups with offsets but no group object: Empty since their latest
	// commit (restored after a restart, or committed to as their group
	// was deleted).
	var offsetsOnly []string
	for id, last := range c.offsets.groups() {
		if !hasObject[id] && last <= cutoff {
			offsetsOnly = append(offsetsOnly, id)
			for k, v := range c.offsets.group(id) {
				expired[k] = v
			}
		}
	}
	if len(expired) > 0 {
		counts, err := c.offsets.expire(expired)
		if err != nil {
			c.log.Error("expired offsets not deleted; retrying at the next check", "offsets", len(expired), "err", err)
			return
		}
		ids := make([]string, 0, len(counts))
		for id := range counts {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			c.log.Info("group offsets expired", "group", id, "offsets", counts[id], "retention", c.cfg.OffsetsRetention)
			c.metrics.expiredOffsets.Add(float64(counts[id]))
		}
		for _, id := range offsetsOnly {
			if counts[id] > 0 && !c.offsets.hasGroup(id) && c.group(id, false) == nil {
				c.deleted(id)
			}
		}
	}
	for _, g := range empty {
		dead := false
		if !g.do(func() {
			g.expirePendingIDs()
			if g.state == groupEmpty && len(g.members) == 0 && len(g.pendingIDs) == 0 && !c.offsets.hasGroup(g.id) {
				g.state, dead = groupDead, true
			}
		}) {
			continue
		}
		if dead {
			c.remove(g)
			c.deleted(g.id)
		}
	}
}

// deleted logs and counts a group deleted by expiry.
func (c *coordinator) deleted(id string) {
	c.log.Info("empty group deleted: no committed offsets left", "group", id)
	c.metrics.deletedGroups.Inc()
}

// expiredOffsets returns those of offs (the group's committed offsets) that
// expired at cutoff (now − OffsetsRetention, Unix ms), following Kafka's
// GroupMetadata.removeExpiredOffsets (KIP-211):
//   - Empty group: every offset, OffsetsRetention after the group became
//     Empty (emptySince) or after its commit if that is later (Kafka uses
//     emptySince alone, so an offset a tool commits to a long-empty group
//     would expire at once); for a group that never had members
//     (standalone consumers, tools: Kafka's group without a protocol
//     type), emptySince is 0, so each offset expires OffsetsRetention after
//     its commit.
//   - group with members of the "consumer" protocol type: offsets of topics
//     no member subscribes to, OffsetsRetention after their commit;
//     subscribed topics' offsets never expire while it has members.
//   - other groups with members (other protocol types, or subscriptions
//     that cannot be read): none.
//
// It runs on the group's goroutine.
func (g *group) expiredOffsets(offs map[offsetKey]committedOffset, cutoff int64) map[offsetKey]committedOffset {
	out := map[offsetKey]committedOffset{}
	if g.state == groupEmpty {
		for k, v := range offs {
			if max(g.emptySince, v.CommitMs) <= cutoff {
				out[k] = v
			}
		}
		return out
	}
	subscribed, known := g.subscription()
	if !known {
		return out
	}
	for k, v := range offs {
		if !subscribed[k.topic] && v.CommitMs <= cutoff {
			out[k] = v
		}
	}
	return out
}

// subscription returns the topics the group's members subscribe to, read
// from their "consumer" protocol metadata, and whether it is known: only
// for the consumer protocol type, after the first generation chose a
// protocol, and when every member's metadata can be read. It takes the
// topics of every protocol a member lists, not only the chosen one, so
// that during a rebalance a joining member's topics count too.
func (g *group) subscription() (map[string]bool, bool) {
	if g.protocolType != "consumer" || g.protocol == "" || len(g.members) == 0 {
		return nil, false
	}
	out := map[string]bool{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			var meta kmsg.ConsumerMemberMetadata
			if meta.ReadFrom(p.Metadata) != nil {
				return nil, false
			}
			for _, t := range meta.Topics {
				out[t] = true
			}
		}
	}
	return out, true
}
