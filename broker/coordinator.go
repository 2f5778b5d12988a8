package broker

import (
	"log/slog"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
)

// coordinator is the group coordinator: the registry of consumer groups and
// the store of their committed offsets. This broker coordinates every
// group.
type coordinator struct {
	cfg     Config
	log     *slog.Logger
	offsets *offsetStore
	quit    chan struct{}

	mu     sync.Mutex
	groups map[string]*group
}

// maxGroupIDLength bounds a group id; a longer one is INVALID_GROUP_ID.
const maxGroupIDLength = 1024

func newCoordinator(cfg Config, log *slog.Logger, offsets *offsetStore) *coordinator {
	return &coordinator{cfg: cfg, log: log, offsets: offsets, quit: make(chan struct{}), groups: map[string]*group{}}
}

// group returns the named group, creating it (Empty) when create is set.
func (c *coordinator) group(id string, create bool) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[id]
	if g == nil && create {
		g = newGroup(c, id)
		c.groups[id] = g
	}
	return g
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
		code := int16(0)
		if !g.do(func() {
			if len(g.members) > 0 {
				code = kerr.NonEmptyGroup.Code
				return
			}
			g.state = groupDead
		}) {
			return kerr.CoordinatorNotAvailable.Code
		}
		if code != 0 {
			return code
		}
		c.mu.Lock()
		delete(c.groups, id)
		c.mu.Unlock()
		close(g.kill)
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

func (c *coordinator) close() {
	close(c.quit)
	c.mu.Lock()
	gs := c.groups
	c.mu.Unlock()
	for _, g := range gs {
		<-g.done
	}
}
