package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/kafkatest"
)

func fastGroups(c *Config) { c.GroupInitialRebalanceDelay = 0 }

// groupMember consumes in a group and records what it saw and what it owns.
type groupMember struct {
	cl   *kgo.Client
	mu   sync.Mutex
	seen map[string]int // "partition/offset" -> times seen
	owns map[int32]bool
}

func joinGroup(t *testing.T, addr, group, topic string) *groupMember {
	m := &groupMember{seen: map[string]int{}, owns: map[int32]bool{}}
	m.cl = newClient(t, addr,
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.AutoCommitMarks(), kgo.AutoCommitInterval(100*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			for _, p := range a[topic] {
				m.owns[p] = true
			}
			m.mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			cl.CommitMarkedOffsets(ctx)
			m.mu.Lock()
			for _, p := range r[topic] {
				delete(m.owns, p)
			}
			m.mu.Unlock()
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			for _, p := range l[topic] {
				delete(m.owns, p)
			}
			m.mu.Unlock()
		}),
	)
	return m
}

// poll consumes once (bounded) and marks what it processed.
func (m *groupMember) poll(t *testing.T) int {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	fs := m.cl.PollFetches(ctx)
	n := 0
	fs.EachRecord(func(r *kgo.Record) {
		m.mu.Lock()
		m.seen[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
		m.mu.Unlock()
		m.cl.MarkCommitRecords(r)
		n++
	})
	return n
}

func (m *groupMember) owned() map[int32]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32]bool{}
	for p := range m.owns {
		out[p] = true
	}
	return out
}

// TestConsumerGroupRebalance runs a franz-go consumer group (cooperative
// sticky, the default) over 6 partitions: one member takes everything, a
// second joins and the partitions split without overlap, the second leaves
// and the first takes everything back. Every record is consumed, committed
// offsets reach the end, and the committed offsets survive a restart of the
// broker. The same outcomes are asserted on our broker, kfake (no restart:
// it keeps nothing on disk) and Apache Kafka.
func TestConsumerGroupRebalance(t *testing.T) {
	type target struct {
		addr    string
		restart func() string // nil: not restartable
	}
	targets := map[string]func(t *testing.T) target{
		"ours": func(t *testing.T) target {
			dir := t.TempDir()
			b := startBroker(t, dir, fastGroups)
			return target{b.Addr().String(), func() string {
				b.Close()
				return startBroker(t, dir, fastGroups).Addr().String()
			}}
		},
		"kfake": func(t *testing.T) target {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return target{addr: c.ListenAddrs()[0]}
		},
		"kafka": func(t *testing.T) target {
			c := kafkatest.Start(t, kafkatest.Options{})
			return target{c.Brokers()[0], func() string {
				c.Stop(1)
				c.Restart(1)
				return c.Brokers()[0]
			}}
		},
	}
	for _, name := range []string{"ours", "kfake", "kafka"} {
		t.Run(name, func(t *testing.T) {
			tg := targets[name](t)
			testConsumerGroupRebalance(t, tg.addr, tg.restart)
		})
	}
}

func testConsumerGroupRebalance(t *testing.T, addr string, restart func() string) {
	const topic, group, n = "grp", "sink", 3000
	createTopic(t, addr, topic, 6, nil)
	p := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	for i := 0; i < n; i++ {
		p.Produce(context.Background(), &kgo.Record{Key: []byte(strconv.Itoa(i % 50)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(60 * time.Second)
	waitFor := func(what string, cond func() bool, poll ...*groupMember) {
		t.Helper()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			for _, m := range poll {
				m.poll(t)
			}
		}
	}
	a := joinGroup(t, addr, group, topic)
	waitFor("member A to own all 6 partitions", func() bool { return len(a.owned()) == 6 }, a)
	waitFor("member A to consume a part", func() bool { return len(a.seen) >= n/3 }, a)

	bm := joinGroup(t, addr, group, topic)
	disjoint := func() bool {
		oa, ob := a.owned(), bm.owned()
		if len(oa)+len(ob) != 6 || len(oa) == 0 || len(ob) == 0 {
			return false
		}
		for p := range oa {
			if ob[p] {
				return false
			}
		}
		return true
	}
	waitFor("the partitions to split between A and B", disjoint, a, bm)

	total := func() int {
		all := map[string]bool{}
		for _, m := range []*groupMember{a, bm} {
			m.mu.Lock()
			for k := range m.seen {
				all[k] = true
			}
			m.mu.Unlock()
		}
		return len(all)
	}
	waitFor("every record to be consumed", func() bool { return total() == n }, a, bm)

	adm := kadm.NewClient(newClient(t, addr))
	ctx := context.Background()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if d := described[group]; d.State != "Stable" || len(d.Members) != 2 {
		t.Fatalf("group %s with %d members, want Stable with 2", d.State, len(d.Members))
	}

	// B leaves; A gets everything back.
	bm.cl.Close()
	waitFor("member A to own all 6 partitions again", func() bool { return len(a.owned()) == 6 }, a)

	// Committed offsets reach the end offsets.
	ends, _ := adm.ListEndOffsets(ctx, topic)
	caughtUp := func() bool {
		a.cl.CommitMarkedOffsets(ctx)
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(e kadm.ListedOffset) {
			c, found := committed.Lookup(topic, e.Partition)
			ok = ok && found && c.At == e.Offset
		})
		return ok
	}
	waitFor("committed offsets to reach the end", caughtUp, a)
	a.cl.Close()

	if restart == nil {
		return
	}
	// Offsets survive a restart of the broker.
	before, _ := adm.FetchOffsets(ctx, group)
	addr = restart()
	after, err := kadm.NewClient(newClient(t, addr)).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	before.Each(func(o kadm.OffsetResponse) {
		if got, ok := after.Lookup(o.Topic, o.Partition); !ok || got.At != o.At {
			t.Fatalf("%s/%d: committed %d before the restart, %d after", o.Topic, o.Partition, o.At, got.At)
		}
	})
}

// TestGroupErrors sends the group requests a confused or stale client would,
// and checks each gets the code Kafka gives.
func TestGroupErrors(t *testing.T) {
	b := startBroker(t, "", fastGroups)
	addr := b.Addr().String()
	createTopic(t, addr, "ge", 1, nil)
	c := dialRaw(t, addr)

	joinWith := func(group, member string, metadata []byte) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 5
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: metadata}}
		return c.roundTrip(req).(*kmsg.JoinGroupResponse)
	}
	join := func(group, member string) *kmsg.JoinGroupResponse { return joinWith(group, member, []byte{0, 0}) }
	// v4+: the first join hands out a member id.
	first := join("g", "")
	if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
		t.Fatalf("first join: error %d member %q, want MEMBER_ID_REQUIRED with an id", first.ErrorCode, first.MemberID)
	}
	joined := join("g", first.MemberID)
	if joined.ErrorCode != 0 || joined.Generation != 1 || joined.LeaderID != first.MemberID || len(joined.Members) != 1 {
		t.Fatalf("second join: %+v", joined)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version = 3
	sync.Group, sync.Generation, sync.MemberID = "g", 1, first.MemberID
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: first.MemberID, MemberAssignment: []byte("mine")}}
	if sr := c.roundTrip(sync).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 || string(sr.MemberAssignment) != "mine" {
		t.Fatalf("sync: error %d assignment %q", sr.ErrorCode, sr.MemberAssignment)
	}

	commit := func(gen int32, member string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = 6
		req.Group, req.Generation, req.MemberID = "g", gen, member
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "ge"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Offset = 7
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return c.roundTrip(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	heartbeat := func(gen int32, member string) int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version = 3
		req.Group, req.Generation, req.MemberID = "g", gen, member
		return c.roundTrip(req).(*kmsg.HeartbeatResponse).ErrorCode
	}
	cases := []struct {
		name string
		got  int16
		want error
	}{
		{"commit from the member", commit(1, first.MemberID), nil},
		{"commit from a stale generation", commit(0, first.MemberID), kerr.IllegalGeneration},
		{"commit from an unknown member", commit(1, "nobody"), kerr.UnknownMemberID},
		{"tool commit while the group has members", commit(-1, ""), kerr.UnknownMemberID},
		{"heartbeat", heartbeat(1, first.MemberID), nil},
		{"heartbeat from a stale generation", heartbeat(0, first.MemberID), kerr.IllegalGeneration},
		{"heartbeat from an unknown member", heartbeat(1, "nobody"), kerr.UnknownMemberID},
		{"join with an unknown member id", join("g", "nobody").ErrorCode, kerr.UnknownMemberID},
		{"join with an empty group id", join("", "").ErrorCode, kerr.InvalidGroupID},
		{"join with a group id of 2000 bytes", join(string(make([]byte, 2000)), "").ErrorCode, kerr.InvalidGroupID},
		{"join with 2 MiB of protocol metadata", joinWith("other", "", make([]byte, 2<<20)).ErrorCode, kerr.InvalidRequest},
		{"join with a session timeout below the minimum", func() int16 {
			req := kmsg.NewPtrJoinGroupRequest()
			req.Version = 5
			req.Group, req.ProtocolType, req.SessionTimeoutMillis = "other", "consumer", 10
			req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
			return c.roundTrip(req).(*kmsg.JoinGroupResponse).ErrorCode
		}(), kerr.InvalidSessionTimeout},
	}
	for _, tc := range cases {
		if !errors.Is(kerr.ErrorForCode(tc.got), tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, kerr.ErrorForCode(tc.got), tc.want)
		}
	}

	adm := kadm.NewClient(newClient(t, addr))
	ctx := context.Background()
	del, _ := adm.DeleteGroups(ctx, "g")
	if !errors.Is(del["g"].Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete a group with members: %v", del["g"].Err)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 3
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: first.MemberID}, {MemberID: "nobody"}}
	lr := c.roundTrip(leave).(*kmsg.LeaveGroupResponse)
	if lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave: %+v", lr)
	}
	// Empty now: a tool's commit works, and the offset is readable.
	if code := commit(-1, ""); code != 0 {
		t.Fatalf("tool commit to the empty group: %v", kerr.ErrorForCode(code))
	}
	offs, err := adm.FetchOffsets(ctx, "g")
	if o, ok := offs.Lookup("ge", 0); err != nil || !ok || o.At != 7 {
		t.Fatalf("fetched offset %+v %v", o, err)
	}
	listed, _ := adm.ListGroups(ctx)
	if _, ok := listed["g"]; !ok {
		t.Fatalf("list groups: %v", listed)
	}
	del, _ = adm.DeleteGroups(ctx, "g")
	if del["g"].Err != nil {
		t.Fatalf("delete the empty group: %v", del["g"].Err)
	}
	del, _ = adm.DeleteGroups(ctx, "g")
	if !errors.Is(del["g"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("delete it again: %v", del["g"].Err)
	}
	offs, _ = adm.FetchOffsets(ctx, "g")
	if o, ok := offs.Lookup("ge", 0); ok && o.At != -1 {
		t.Fatalf("offsets left after delete: %+v", o)
	}
}

// TestJoinGroupStorm: one client asking for member ids over and over gets
// GROUP_MAX_SIZE_REACHED once the group's limit is used up, and other
// groups are still served.
func TestJoinGroupStorm(t *testing.T) {
	b := startBroker(t, "", fastGroups, func(c *Config) { c.GroupMaxSize = 3 })
	c := dialRaw(t, b.Addr().String())
	join := func(group string) int16 {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 4
		req.Group, req.ProtocolType = group, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
		return c.roundTrip(req).(*kmsg.JoinGroupResponse).ErrorCode
	}
	for i := 0; i < 3; i++ {
		if code := join("storm"); code != kerr.MemberIDRequired.Code {
			t.Fatalf("join %d: %v, want MEMBER_ID_REQUIRED", i, kerr.ErrorForCode(code))
		}
	}
	for i := 0; i < 100; i++ {
		if code := join("storm"); code != kerr.GroupMaxSizeReached.Code {
			t.Fatalf("join %d past the limit: %v, want GROUP_MAX_SIZE_REACHED", i, kerr.ErrorForCode(code))
		}
	}
	if got := limitHits(t, b, limitGroupMaxSize); got != 100 {
		t.Fatalf("group_max_size hits counted %v, want 100", got)
	}
	if code := join("calm"); code != kerr.MemberIDRequired.Code {
		t.Fatalf("another group during the storm: %v", kerr.ErrorForCode(code))
	}
	// Ids never used expire after the session timeout, freeing the group.
	g := b.groups.group("storm", false)
	g.do(func() {
		for id := range g.pendingIDs {
			g.pendingIDs[id] = time.Now().Add(-time.Second)
		}
	})
	if code := join("storm"); code != kerr.MemberIDRequired.Code {
		t.Fatalf("join after the unused ids expired: %v, want MEMBER_ID_REQUIRED", kerr.ErrorForCode(code))
	}
}
