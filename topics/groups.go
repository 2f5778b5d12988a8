package topics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// GroupInfo is one consumer group as Groups reports it.
type GroupInfo struct {
	Group   string
	State   string // Stable, Empty, PreparingRebalance, …
	Members int
	Lag     int64 // records not yet consumed, over every partition with a commit
}

// Groups lists the consumer groups with their state, members and total lag.
func (a *Admin) Groups(ctx context.Context) ([]GroupInfo, error) {
	listed, err := a.adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("topics: list groups: %w", err)
	}
	ids := listed.Groups()
	if len(ids) == 0 {
		return nil, nil
	}
	lags, err := a.adm.Lag(ctx, ids...)
	if err != nil {
		return nil, fmt.Errorf("topics: group lag: %w", err)
	}
	var out []GroupInfo
	for _, gl := range lags {
		out = append(out, GroupInfo{Group: gl.Group, State: gl.State, Members: len(gl.Members), Lag: gl.Lag.Total()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// PartitionLag is one partition of a group's lag report.
type PartitionLag struct {
	Topic     string
	Partition int32
	Committed int64 // -1: no commit
	End       int64
	Lag       int64
	Member    string // the member assigned the partition, "" if none
}

// Lag returns, for every partition group has committed offsets on or is
// assigned, its committed offset, end offset and lag, sorted. A group the
// cluster does not know is ErrNoSuchGroup.
func (a *Admin) Lag(ctx context.Context, group string) (state string, parts []PartitionLag, err error) {
	lags, err := a.adm.Lag(ctx, group)
	if err != nil {
		return "", nil, fmt.Errorf("topics: lag of group %s: %w", group, err)
	}
	gl, ok := lags[group]
	if !ok {
		return "", nil, fmt.Errorf("topics: group %s not described", group)
	}
	if errors.Is(gl.Error(), kerr.GroupIDNotFound) {
		return "", nil, fmt.Errorf("%w: %s", ErrNoSuchGroup, group)
	}
	if gl.Error() != nil {
		return "", nil, fmt.Errorf("topics: lag of group %s: %w", group, gl.Error())
	}
	for topic, ps := range gl.Lag {
		for p, l := range ps {
			pl := PartitionLag{Topic: topic, Partition: p, Committed: l.Commit.At, End: l.End.Offset, Lag: l.Lag}
			if l.Member != nil {
				pl.Member = l.Member.ClientID + " " + l.Member.MemberID
			}
			parts = append(parts, pl)
		}
	}
	if gl.State == "Dead" && len(parts) == 0 {
		// What Apache Kafka describes for a group it does not know:
		// no members, no offsets.
		return "", nil, fmt.Errorf("%w: %s", ErrNoSuchGroup, group)
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].Partition < parts[j].Partition
	})
	return gl.State, parts, nil
}

// ResetTo says where ResetOffsets moves a group: exactly one field is set.
type ResetTo struct {
	Earliest bool      // the log start offset
	Latest   bool      // the end offset (skip everything there now)
	Time     time.Time // the first offset whose record timestamp is at or after Time
	Offset   *int64    // this offset, clamped to [start, end]
}

func (r ResetTo) validate() error {
	n := 0
	for _, set := range []bool{r.Earliest, r.Latest, !r.Time.IsZero(), r.Offset != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("topics: reset: give exactly one of earliest, latest, a time or an offset")
	}
	return nil
}

// OffsetChange is one partition of a reset plan.
type OffsetChange struct {
	Topic     string
	Partition int32
	From      int64 // committed now, -1 if none
	To        int64
}

// ErrGroupActive is returned by ResetOffsets for a group with members:
// Kafka refuses commits to partitions a live member owns, and the member
// would overwrite the reset anyway. Stop the consumers first.
var ErrGroupActive = errors.New("topics: the group has active members")

// ErrNoSuchGroup is Lag's error for a group the cluster does not know: no
// members and no committed offsets (a mistyped name, or a group whose
// offsets expired).
var ErrNoSuchGroup = errors.New("topics: no such consumer group")

// ResetOffsets computes where group's committed offsets on topics would
// move, and commits them when execute is true (a dry run otherwise, as
// kafka-consumer-groups.sh --reset-offsets without --execute). The group
// must have no members.
func (a *Admin) ResetOffsets(ctx context.Context, group string, topics []string, to ResetTo, execute bool) ([]OffsetChange, error) {
	if err := to.validate(); err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		return nil, errors.New("topics: reset: name the topics to reset")
	}
	described, err := a.adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("topics: describe group %s: %w", group, err)
	}
	if g, ok := described[group]; ok && len(g.Members) > 0 {
		return nil, fmt.Errorf("%w: %s has %d (state %s)", ErrGroupActive, group, len(g.Members), g.State)
	}
	var target kadm.ListedOffsets
	switch {
	case to.Earliest || to.Offset != nil:
		target, err = a.adm.ListStartOffsets(ctx, topics...)
	case to.Latest:
		target, err = a.adm.ListEndOffsets(ctx, topics...)
	default:
		target, err = a.adm.ListOffsetsAfterMilli(ctx, to.Time.UnixMilli(), topics...)
	}
	if err == nil {
		err = target.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("topics: list offsets: %w", err)
	}
	var ends kadm.ListedOffsets
	if to.Offset != nil {
		if ends, err = a.adm.ListEndOffsets(ctx, topics...); err == nil {
			err = ends.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("topics: list end offsets: %w", err)
		}
	}
	committed, err := a.adm.FetchOffsetsForTopics(ctx, group, topics...)
	if err != nil {
		return nil, fmt.Errorf("topics: fetch offsets of %s: %w", group, err)
	}
	var plan []OffsetChange
	offsets := kadm.Offsets{}
	target.Each(func(o kadm.ListedOffset) {
		at := o.Offset
		if to.Offset != nil {
			end, _ := ends.Lookup(o.Topic, o.Partition)
			at = min(max(*to.Offset, o.Offset), end.Offset)
		}
		from := int64(-1)
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
			from = c.At
		}
		plan = append(plan, OffsetChange{Topic: o.Topic, Partition: o.Partition, From: from, To: at})
		offsets.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: at, LeaderEpoch: -1})
	})
	sort.Slice(plan, func(i, j int) bool {
		if plan[i].Topic != plan[j].Topic {
			return plan[i].Topic < plan[j].Topic
		}
		return plan[i].Partition < plan[j].Partition
	})
	if !execute {
		return plan, nil
	}
	resps, err := a.adm.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return plan, fmt.Errorf("topics: commit the reset offsets of %s: %w", group, err)
	}
	return plan, nil
}
