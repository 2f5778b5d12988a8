package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shortRetention makes committed offsets expire 300ms after their group
// empties (or their commit), checked every 50ms.
func shortRetention(c *Config) {
	c.OffsetsRetention = 300 * time.Millisecond
	c.OffsetsRetentionCheckInterval = 50 * time.Millisecond
	c.GroupInitialRebalanceDelay = 0
}

// retentionDeadline bounds every wait for an expiry in these tests.
func retentionDeadline() time.Time { return time.Now().Add(10 * time.Second) }

// fetchOffset asks OffsetFetch for one partition's committed offset, -1
// when there is none.
func fetchOffset(t *testing.T, cl *kgo.Client, group, topic string, partition int32) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 5
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("offset fetch of group %s: %v", group, err)
	}
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset fetch of group %s: unexpected answer %+v", group, resp)
	}
	return resp.Topics[0].Partitions[0].Offset
}

// listedGroups returns the groups ListGroups reports, with their states.
func listedGroups(t *testing.T, adm *kadm.Client) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("list groups: %v", err)
	}
	out := map[string]string{}
	for _, g := range listed {
		out[g.Group] = g.State
	}
	return out
}

// describedState returns the state DescribeGroups reports for group.
func describedState(t *testing.T, adm *kadm.Client, group string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	return described[group].State
}

// produceTo writes n records to each of topics.
func produceTo(t *testing.T, addr string, n int, topics ...string) {
	t.Helper()
	cl := newClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range topics {
		for i := 0; i < n; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatalf("produce to %s: %v", topic, err)
			}
		}
	}
}

// groupConsumer joins group subscribed to topics, consumes until it has
// seen a record of every topic, and commits what it consumed (retrying
// while a rebalance refuses the commit). It commits nothing else: auto
// commit is off.
func groupConsumer(t *testing.T, addr, group string, topics ...string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.RetryTimeout(10*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	seen := map[string]bool{}
	waitUntil(t, retentionDeadline(), fmt.Sprintf("group %s to consume %v", group, topics), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[r.Topic] = true })
		return len(seen) == len(topics)
	})
	waitUntil(t, retentionDeadline(), fmt.Sprintf("group %s to commit", group), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return cl.CommitUncommittedOffsets(ctx) == nil
	})
	return cl
}

// TestGroupOffsetsExpireWhenEmpty: a consumer group commits, its only
// member leaves; once the retention has passed its offsets are gone
// (OffsetFetch answers -1), the group is no longer listed nor described,
// and neither comes back when the broker restarts on the same data dir
// with the default (7-day) retention.
func TestGroupOffsetsExpireWhenEmpty(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, shortRetention)
	addr := b.Addr().String()
	createTopic(t, addr, "expiring", 1, nil)
	produceTo(t, addr, 3, "expiring")
	admCl := newClient(t, addr)
	adm := kadm.NewClient(admCl)

	member := groupConsumer(t, addr, "leaving", "expiring")
	if got := fetchOffset(t, admCl, "leaving", "expiring", 0); got != 3 {
		t.Fatalf("committed offset %d, want 3", got)
	}
	member.Close() // leaves the group: it is Empty from now on

	waitUntil(t, retentionDeadline(), "the empty group's offsets to expire and the group to go", func() bool {
		_, listed := listedGroups(t, adm)["leaving"]
		return !listed && fetchOffset(t, admCl, "leaving", "expiring", 0) == -1
	})
	if state := describedState(t, adm, "leaving"); state != "Dead" {
		t.Fatalf("DescribeGroups reports state %q for the deleted group, want Dead", state)
	}
	if n := counterValue(t, b.metrics.expiredOffsets); n < 1 {
		t.Fatalf("expired_offsets_total = %v, want at least 1", n)
	}
	if n := counterValue(t, b.metrics.deletedGroups); n < 1 {
		t.Fatalf("deleted_groups_total = %v, want at least 1", n)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir) // default retention: nothing would expire now
	admCl = newClient(t, b.Addr().String())
	adm = kadm.NewClient(admCl)
	if got := fetchOffset(t, admCl, "leaving", "expiring", 0); got != -1 {
		t.Fatalf("after a restart the expired offset came back: %d", got)
	}
	if groups := listedGroups(t, adm); len(groups) != 0 {
		t.Fatalf("after a restart ListGroups reports %v, want nothing", groups)
	}
}

// TestGroupWithMembersKeepsSubscribedOffsets: a group keeps a member
// subscribed to one topic while another member, subscribed to a second
// topic, commits and leaves. The offset of the topic nobody subscribes to
// any more expires; the subscribed topic's offset stays, past the
// retention, as long as the member does.
func TestGroupWithMembersKeepsSubscribedOffsets(t *testing.T) {
	b := startBroker(t, "", shortRetention)
	addr := b.Addr().String()
	createTopic(t, addr, "kept", 1, nil)
	createTopic(t, addr, "dropped", 1, nil)
	produceTo(t, addr, 2, "kept", "dropped")
	admCl := newClient(t, addr)
	adm := kadm.NewClient(admCl)

	stays := groupConsumer(t, addr, "mixed", "kept")
	leaves := groupConsumer(t, addr, "mixed", "dropped")
	if got := fetchOffset(t, admCl, "mixed", "dropped", 0); got != 2 {
		t.Fatalf("committed offset of the dropped topic %d, want 2", got)
	}
	leaves.Close()

	waitUntil(t, retentionDeadline(), "the offset of the topic no member subscribes to to expire", func() bool {
		return fetchOffset(t, admCl, "mixed", "dropped", 0) == -1
	})
	// Several retention periods more: the subscribed offset stays.
	for i := 0; i < 5; i++ {
		time.Sleep(b.cfg.OffsetsRetention)
		if got := fetchOffset(t, admCl, "mixed", "kept", 0); got != 2 {
			t.Fatalf("the subscribed topic's offset is %d while the group has a member, want 2", got)
		}
	}
	if state := listedGroups(t, adm)["mixed"]; state == "" || state == "Empty" {
		t.Fatalf("group state %q, want it listed with its member", state)
	}

	// Once the last member leaves, everything goes.
	stays.Close()
	waitUntil(t, retentionDeadline(), "the emptied group to go", func() bool {
		_, listed := listedGroups(t, adm)["mixed"]
		return !listed && fetchOffset(t, admCl, "mixed", "kept", 0) == -1
	})
}

// TestStandaloneOffsetsExpire: offsets committed without group membership
// (a tool, or a consumer assigning partitions itself) expire after the
// retention, and the group goes with them.
func TestStandaloneOffsetsExpire(t *testing.T) {
	b := startBroker(t, "", shortRetention)
	addr := b.Addr().String()
	createTopic(t, addr, "solo", 2, nil)
	admCl := newClient(t, addr)
	adm := kadm.NewClient(admCl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var offsets kadm.Offsets
	offsets.AddOffset("solo", 0, 5, -1)
	offsets.AddOffset("solo", 1, 7, -1)
	resp, err := adm.CommitOffsets(ctx, "standalone", offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit offsets: %v", err)
	}
	waitUntil(t, retentionDeadline(), "the standalone offsets to expire", func() bool {
		_, listed := listedGroups(t, adm)["standalone"]
		return !listed && fetchOffset(t, admCl, "standalone", "solo", 0) == -1 && fetchOffset(t, admCl, "standalone", "solo", 1) == -1
	})
}

// TestRestoredGroupExpires: offsets committed under a long retention are
// still there after a restart; after a restart with a short retention the
// group, which only has offsets now, is Empty since its latest commit and
// goes.
func TestRestoredGroupExpires(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr := b.Addr().String()
	createTopic(t, addr, "restored", 1, nil)
	adm := kadm.NewClient(newClient(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var offsets kadm.Offsets
	offsets.AddOffset("restored", 0, 9, -1)
	if resp, err := adm.CommitOffsets(ctx, "old", offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit offsets: %v %v", err, resp.Error())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, shortRetention)
	admCl := newClient(t, b.Addr().String())
	adm = kadm.NewClient(admCl)
	waitUntil(t, retentionDeadline(), "the restored group to expire", func() bool {
		_, listed := listedGroups(t, adm)["old"]
		return !listed && fetchOffset(t, admCl, "old", "restored", 0) == -1
	})
	if n := counterValue(t, b.metrics.deletedGroups); n != 1 {
		t.Fatalf("deleted_groups_total = %v, want 1", n)
	}
}

// TestManyGroupsExpire: 1000 groups created by commits alone are all
// deleted once their offsets expire: no group object, no offset and no
// listing is left behind.
func TestManyGroupsExpire(t *testing.T) {
	const groups = 1000
	b := startBroker(t, "", shortRetention)
	addr := b.Addr().String()
	createTopic(t, addr, "many", 1, nil)
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)

	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < groups; i += 8 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var offsets kadm.Offsets
				offsets.AddOffset("many", 0, int64(i), -1)
				resp, err := adm.CommitOffsets(ctx, fmt.Sprintf("g-%04d", i), offsets)
				cancel()
				if err == nil {
					err = resp.Error()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("commit: %v", err)
	}

	waitUntil(t, retentionDeadline(), "every group to be deleted", func() bool {
		b.groups.mu.Lock()
		objects := len(b.groups.groups)
		b.groups.mu.Unlock()
		b.groups.offsets.mu.Lock()
		live := b.groups.offsets.nlive
		b.groups.offsets.mu.Unlock()
		return objects == 0 && live == 0
	})
	if listed := listedGroups(t, adm); len(listed) != 0 {
		t.Fatalf("ListGroups still reports %d groups", len(listed))
	}
	if n := counterValue(t, b.metrics.expiredOffsets); n != groups {
		t.Fatalf("expired_offsets_total = %v, want %d", n, groups)
	}
	// A group whose object went while its first commit was being stored
	// is deleted again when that offset expires: at least one per group.
	if n := counterValue(t, b.metrics.deletedGroups); n < groups {
		t.Fatalf("deleted_groups_total = %v, want at least %d", n, groups)
	}
}
