package mongots

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// OffsetsCollection is the regular collection holding the sink's offsets
// checkpoint. Topic names have no '_', so it never collides with a
// topic's collection.
const OffsetsCollection = "sink_offsets"

// MaxStoredOffsets returns, for each of partitions, the highest source
// offset stored in coll for that partition, or -1 when none is. Per
// partition it runs find {src.p: p} sort {src.o: -1} limit 1, served by the
// index {src.p: 1, src.o: -1}.
//
// The highest offset proves that the batch holding it was written, but
// not that every lower offset was: Write sorts by device and time and
// inserts unordered, so a batch that failed part way may have stored a
// high offset and not a lower one. To skip exactly what a replayed batch
// already stored, use UnstoredSamples.
func (s *Store) MaxStoredOffsets(ctx context.Context, coll string, partitions []int32) (map[int32]int64, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	c := s.db.Collection(coll)
	out := make(map[int32]int64, len(partitions))
	for _, p := range partitions {
		if _, done := out[p]; done {
			continue
		}
		opts := options.FindOne().
			SetSort(bson.D{{Key: fieldSrc + "." + srcOffset, Value: int32(-1)}}).
			SetProjection(bson.D{{Key: "_id", Value: int32(0)}, {Key: fieldSrc + "." + srcOffset, Value: int32(1)}})
		raw, err := c.FindOne(ctx, bson.D{{Key: fieldSrc + "." + srcPartition, Value: p}}, opts).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			out[p] = -1
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("highest stored offset of partition %d in %s: %w", p, s.namespace(coll), err)
		}
		o, ok := raw.Lookup(fieldSrc, srcOffset).AsInt64OK()
		if !ok {
			return nil, fmt.Errorf("%w: %s: partition %d: src.o is %s, want an integer", ErrCorruptDoc, s.namespace(coll), p, raw.Lookup(fieldSrc, srcOffset).Type)
		}
		out[p] = o
	}
	return out, nil
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

// LoadOffsets returns the checkpoint of group for topic: partition → the
// next offset to read. It is empty when none was saved. It runs
// find {group, topic} on the collection sink_offsets, which holds one
// document per group, topic and partition, so it needs no index but _id's.
func (s *Store) LoadOffsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	if err := checkGroupTopic(group, topic); err != nil {
		return nil, err
	}
	filter := bson.D{{Key: "group", Value: group}, {Key: "topic", Value: topic}}
	cur, err := s.offsets().Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("load offsets of group %q, topic %s from %s: %w", group, topic, s.namespace(OffsetsCollection), err)
	}
	defer func() { _ = cur.Close(ctx) }()
	out := map[int32]int64{}
	for cur.Next(ctx) {
		var e struct {
			ID        string `bson:"_id"`
			Partition int32  `bson:"partition"`
			Offset    int64  `bson:"offset"`
		}
		if err := cur.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorruptDoc, s.namespace(OffsetsCollection), err)
		}
		if e.ID != offsetsID(group, topic, e.Partition) || e.Offset < 0 {
			return nil, fmt.Errorf("%w: %s: entry %q has partition %d and offset %d", ErrCorruptDoc, s.namespace(OffsetsCollection), e.ID, e.Partition, e.Offset)
		}
		out[e.Partition] = e.Offset
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("load offsets of group %q, topic %s from %s: %w", group, topic, s.namespace(OffsetsCollection), err)
	}
	return out, nil
}

// SaveOffsets upserts the checkpoint of group for topic: partition → the
// next offset to read. Each entry is the document
// {_id: "<group>/<topic>/<partition>", group, topic, partition, offset,
// updated_at}; partitions not in next keep their entries. The write
// concern is majority, so a checkpoint survives a failover.
func (s *Store) SaveOffsets(ctx context.Context, group, topic string, next map[int32]int64) error {
	if err := checkGroupTopic(group, topic); err != nil {
		return err
	}
	if len(next) == 0 {
		return nil
	}
	partitions := make([]int32, 0, len(next))
	for p, o := range next {
		if p < 0 || o < 0 {
			return fmt.Errorf("%w: partition %d, offset %d: want both 0 or more", ErrInvalidArgument, p, o)
		}
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	now := time.Now().UTC()
	models := make([]mongo.WriteModel, 0, len(partitions))
	for _, p := range partitions {
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: offsetsID(group, topic, p)}}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{
				{Key: "group", Value: group},
				{Key: "topic", Value: topic},
				{Key: "partition", Value: p},
				{Key: "offset", Value: next[p]},
				{Key: "updated_at", Value: now},
			}}}).
			SetUpsert(true))
	}
	if _, err := s.offsets().BulkWrite(ctx, models); err != nil {
		return fmt.Errorf("save offsets of group %q, topic %s to %s: %w", group, topic, s.namespace(OffsetsCollection), err)
	}
	return nil
}

func (s *Store) offsets() *mongo.Collection {
	return s.db.Collection(OffsetsCollection, options.Collection().SetWriteConcern(writeconcern.Majority()))
}
