package mongots

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// OffsetsCollection is the regular collection holding the sink's offsets
// checkpoint. Topic names have no '_', so it never collides with a
// topic's collection.
const OffsetsCollection = "sink_offsets"

// Checkpoint is what sink_offsets holds for one partition of one group.
type Checkpoint struct {
	// Next is the next offset to read: every record before it is stored
	// or dead-lettered. -1 when none was saved.
	Next int64
	// Attempted is at or above the highest offset whose record a write
	// may have stored (MarkAttempted, sent before the write). -1 when none
	// was recorded, as in a checkpoint saved before factorywire recorded
	// it.
	Attempted int64
}

// offsetsID returns the _id of a checkpoint entry. A topic has no '/', so
// the last two '/' separate the fields even when the group has some.
func offsetsID(group, topic string, partition int32) string {
	return group + "/" + topic + "/" + strconv.FormatInt(int64(partition), 10)
}

func checkGroupTopic(group, topic string) error {
	if group == "" || topic == "" || strings.Contains(topic, "/") {
		return fmt.Errorf("%w: group %q, topic %q: want a non-empty group and a non-empty topic without '/'", ErrInvalidArgument, group, topic)
	}
	return nil
}

// LoadCheckpoints returns the checkpoint of group for topic, by
// partition; empty when none was saved. It runs find {group, topic} on the
// collection sink_offsets, which holds one document per group, topic and
// partition, so it needs no index but _id's and reads a few documents per
// partition whatever the history. Read concern majority (see
// Options.WriteConcern).
func (s *Store) LoadCheckpoints(ctx context.Context, group, topic string) (map[int32]Checkpoint, error) {
	if err := checkGroupTopic(group, topic); err != nil {
		return nil, err
	}
	filter := bson.D{{Key: "group", Value: group}, {Key: "topic", Value: topic}}
	cur, err := s.collection(OffsetsCollection).Find(ctx, filter)
	if err != nil {
		return nil, s.commandError(OffsetsCollection, "find", fmt.Sprintf("load the checkpoint of group %q, topic %s", group, topic), err)
	}
	defer func() { _ = cur.Close(ctx) }()
	out := map[int32]Checkpoint{}
	for cur.Next(ctx) {
		raw := cur.Current
		id, _ := raw.Lookup("_id").StringValueOK()
		part, ok := raw.Lookup("partition").AsInt64OK()
		if !ok || part < 0 || part > 1<<31-1 || id != offsetsID(group, topic, int32(part)) {
			return nil, fmt.Errorf("%w: %s: entry %s: want _id <group>/<topic>/<partition> and its partition", ErrCorruptDoc, s.namespace(OffsetsCollection), raw)
		}
		cp := Checkpoint{Next: -1, Attempted: -1}
		for _, f := range []struct {
			key string
			dst *int64
		}{{"offset", &cp.Next}, {"attempted", &cp.Attempted}} {
			v, err := raw.LookupErr(f.key)
			if err != nil {
				continue
			}
			n, ok := v.AsInt64OK()
			if !ok || n < 0 {
				return nil, fmt.Errorf("%w: %s: entry %q: %s is %s, want an integer of 0 or more", ErrCorruptDoc, s.namespace(OffsetsCollection), id, f.key, v)
			}
			*f.dst = n
		}
		out[int32(part)] = cp
	}
	if err := cur.Err(); err != nil {
		return nil, s.commandError(OffsetsCollection, "find", fmt.Sprintf("load the checkpoint of group %q, topic %s", group, topic), err)
	}
	return out, nil
}

// LoadOffsets returns the next offset to read of each partition of topic
// that group saved one for (LoadCheckpoints without Attempted).
func (s *Store) LoadOffsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	cps, err := s.LoadCheckpoints(ctx, group, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(cps))
	for p, cp := range cps {
		if cp.Next >= 0 {
			out[p] = cp.Next
		}
	}
	return out, nil
}

// SaveOffsets upserts the checkpoint of group for topic: partition → the
// next offset to read. Each entry is the document
// {_id: "<group>/<topic>/<partition>", group, topic, partition, offset,
// attempted, updated_at}; partitions not in next keep their entries. One
// unordered bulk write of updates with upsert, $set of offset.
func (s *Store) SaveOffsets(ctx context.Context, group, topic string, next map[int32]int64) error {
	return s.SaveTopicOffsets(ctx, group, map[string]map[int32]int64{topic: next})
}

// SaveTopicOffsets is SaveOffsets for several topics at once (topic →
// partition → next offset): one bulk write for all of them, as a sink
// saves after a batch that spans topics.
func (s *Store) SaveTopicOffsets(ctx context.Context, group string, next map[string]map[int32]int64) error {
	if err := s.upsertCheckpoints(ctx, group, "$set", "offset", next); err != nil {
		return fmt.Errorf("save offsets: %w", err)
	}
	return nil
}

// MarkAttempted records, before a write, that the write may store
// records of topic up to attempted[p] in partition p: the same upsert as
// SaveOffsets, with {$max: {attempted: n}}, so the mark never goes back.
// A sink that takes the partition over starts from it instead of reading
// the collection: records above it were never written.
func (s *Store) MarkAttempted(ctx context.Context, group, topic string, attempted map[int32]int64) error {
	return s.MarkTopicsAttempted(ctx, group, map[string]map[int32]int64{topic: attempted})
}

// MarkTopicsAttempted is MarkAttempted for several topics at once (topic
// → partition → mark): one bulk write for all of them.
func (s *Store) MarkTopicsAttempted(ctx context.Context, group string, attempted map[string]map[int32]int64) error {
	if err := s.upsertCheckpoints(ctx, group, "$max", "attempted", attempted); err != nil {
		return fmt.Errorf("mark attempted offsets: %w", err)
	}
	return nil
}

func (s *Store) upsertCheckpoints(ctx context.Context, group, op, key string, values map[string]map[int32]int64) error {
	topics := make([]string, 0, len(values))
	n := 0
	for topic, parts := range values {
		if err := checkGroupTopic(group, topic); err != nil {
			return err
		}
		for p, o := range parts {
			if p < 0 || o < 0 {
				return fmt.Errorf("%w: topic %s, partition %d, %s %d: want both 0 or more", ErrInvalidArgument, topic, p, key, o)
			}
		}
		if len(parts) > 0 {
			topics = append(topics, topic)
			n += len(parts)
		}
	}
	if n == 0 {
		return nil
	}
	slices.Sort(topics)
	now := time.Now().UTC()
	models := make([]mongo.WriteModel, 0, n)
	for _, topic := range topics {
		partitions := make([]int32, 0, len(values[topic]))
		for p := range values[topic] {
			partitions = append(partitions, p)
		}
		slices.Sort(partitions)
		for _, p := range partitions {
			set := bson.D{
				{Key: "group", Value: group},
				{Key: "topic", Value: topic},
				{Key: "partition", Value: p},
				{Key: "updated_at", Value: now},
			}
			update := bson.D{{Key: "$set", Value: append(set, bson.E{Key: key, Value: values[topic][p]})}}
			if op != "$set" {
				update = bson.D{{Key: "$set", Value: set}, {Key: op, Value: bson.D{{Key: key, Value: values[topic][p]}}}}
			}
			models = append(models, mongo.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "_id", Value: offsetsID(group, topic, p)}}).
				SetUpdate(update).
				SetUpsert(true))
		}
	}
	dups, err := s.bulkDuplicates(ctx, OffsetsCollection, models)
	if err == nil && len(dups) > 0 {
		err = fmt.Errorf("%d upserts by _id refused with a duplicate key", len(dups))
	}
	if err != nil {
		return s.commandError(OffsetsCollection, "update", fmt.Sprintf("group %q, topics %s", group, strings.Join(topics, ",")), err)
	}
	return nil
}

// MarkLowering is a partition's attempted mark to lower: from the value
// the caller raised it to, to the highest offset it may have written.
type MarkLowering struct {
	Topic     string
	Partition int32
	From, To  int64
}

// LowerAttempted lowers attempted marks a sink raised ahead of what it
// wrote, when it gives its partitions up cleanly, so that the next owner
// checks nothing it need not: each entry is an update of the checkpoint
// document, filtered on {_id, attempted: From}, with $set {attempted: To}
// and no upsert, in one unordered bulk write. A mark another member raised
// meanwhile no longer equals From, and stays as it is. It returns how many
// marks were lowered.
func (s *Store) LowerAttempted(ctx context.Context, group string, marks []MarkLowering) (int, error) {
	if len(marks) == 0 {
		return 0, nil
	}
	models := make([]mongo.WriteModel, 0, len(marks))
	for _, m := range marks {
		if err := checkGroupTopic(group, m.Topic); err != nil {
			return 0, err
		}
		if m.Partition < 0 || m.To < 0 || m.To > m.From {
			return 0, fmt.Errorf("%w: topic %s, partition %d, attempted %d to %d: want a partition and marks of 0 or more, lowered", ErrInvalidArgument, m.Topic, m.Partition, m.From, m.To)
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: offsetsID(group, m.Topic, m.Partition)}, {Key: "attempted", Value: m.From}}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "attempted", Value: m.To}, {Key: "updated_at", Value: time.Now().UTC()}}}}))
	}
	lowered := 0
	for len(models) > 0 {
		n := min(len(models), s.bulkChunk())
		res, err := s.collection(OffsetsCollection).BulkWrite(ctx, models[:n], options.BulkWrite().SetOrdered(false))
		if err != nil {
			return lowered, s.commandError(OffsetsCollection, "update", fmt.Sprintf("group %q: lower attempted marks", group), err)
		}
		lowered += int(res.ModifiedCount)
		models = models[n:]
	}
	return lowered, nil
}
