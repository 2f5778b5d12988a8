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
	if err := s.upsertCheckpoints(ctx, group, topic, "$set", "offset", next); err != nil {
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
	if err := s.upsertCheckpoints(ctx, group, topic, "$max", "attempted", attempted); err != nil {
		return fmt.Errorf("mark attempted offsets: %w", err)
	}
	return nil
}

func (s *Store) upsertCheckpoints(ctx context.Context, group, topic, op, key string, values map[int32]int64) error {
	if err := checkGroupTopic(group, topic); err != nil {
		return err
	}
	if len(values) == 0 {
		return nil
	}
	partitions := make([]int32, 0, len(values))
	for p, o := range values {
		if p < 0 || o < 0 {
			return fmt.Errorf("%w: partition %d, %s %d: want both 0 or more", ErrInvalidArgument, p, key, o)
		}
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	now := time.Now().UTC()
	models := make([]mongo.WriteModel, 0, len(partitions))
	for _, p := range partitions {
		set := bson.D{
			{Key: "group", Value: group},
			{Key: "topic", Value: topic},
			{Key: "partition", Value: p},
			{Key: "updated_at", Value: now},
		}
		update := bson.D{{Key: "$set", Value: append(set, bson.E{Key: key, Value: values[p]})}}
		if op != "$set" {
			update = bson.D{{Key: "$set", Value: set}, {Key: op, Value: bson.D{{Key: key, Value: values[p]}}}}
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: offsetsID(group, topic, p)}}).
			SetUpdate(update).
			SetUpsert(true))
	}
	dups, err := s.bulkDuplicates(ctx, OffsetsCollection, models)
	if err == nil && len(dups) > 0 {
		err = fmt.Errorf("%d upserts by _id refused with a duplicate key", len(dups))
	}
	if err != nil {
		return s.commandError(OffsetsCollection, "update", fmt.Sprintf("group %q, topic %s", group, topic), err)
	}
	return nil
}
