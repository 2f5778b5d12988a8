package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// PartitionDir returns the directory of a partition's log in a broker data
// dir: <dataDir>/<topic>-<partition>, as Kafka names it. `broker scrub` and
// `broker repair` use it to find the log they work on.
func PartitionDir(dataDir, topic string, partition int32) string {
	return partitionDir(dataDir, topic, partition)
}

// PartitionRef names one partition of a data dir and its log directory.
// The committed offsets' log is listed too, as partition 0 of
// __consumer_offsets (its directory has no partition suffix).
type PartitionRef struct {
	Topic     string
	Partition int32
	Dir       string // PartitionDir(dataDir, Topic, Partition)
}

// Name is how the partition is named to users: topic-partition, or
// __consumer_offsets for the committed offsets' log.
func (p PartitionRef) Name() string {
	if p.Topic == offsetsDir {
		return offsetsDir
	}
	return fmt.Sprintf("%s-%d", p.Topic, p.Partition)
}

// DataDirPartitions lists the partitions of every topic in a data dir's
// topic catalog, sorted by topic and partition. It only reads the catalog,
// so it is safe while a broker serves the data dir. It fails if the
// directory has no catalog (it is not a broker's data dir).
func DataDirPartitions(dataDir string) ([]PartitionRef, error) {
	if _, err := os.Stat(filepath.Join(dataDir, catalogFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("data dir %s has no %s: it is not a broker data dir, or no broker has run on it", dataDir, catalogFile)
		}
		return nil, fmt.Errorf("data dir %s: %w", dataDir, err)
	}
	cat, err := loadCatalog(dataDir)
	if err != nil {
		return nil, err
	}
	var ps []PartitionRef
	for _, t := range cat.Topics {
		for p := int32(0); p < t.Partitions; p++ {
			ps = append(ps, PartitionRef{Topic: t.Name, Partition: p, Dir: partitionDir(dataDir, t.Name, p)})
		}
	}
	// The committed offsets' log, the broker's own single partition.
	if _, err := os.Stat(filepath.Join(dataDir, offsetsDir)); err == nil {
		ps = append(ps, PartitionRef{Topic: offsetsDir, Partition: 0, Dir: filepath.Join(dataDir, offsetsDir)})
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Topic != ps[j].Topic {
			return ps[i].Topic < ps[j].Topic
		}
		return ps[i].Partition < ps[j].Partition
	})
	return ps, nil
}

// LockDataDir takes the data dir's exclusive lock, the one a broker holds
// while it runs, for an offline tool that must not change the logs under a
// running broker (`broker repair`). It fails, naming the lock file, if a
// broker (or another tool) holds it; a broker started meanwhile fails the
// same way. unlock releases it.
func LockDataDir(dataDir string) (unlock func(), err error) {
	l, err := lockDir(dataDir)
	if err != nil {
		return nil, err
	}
	return l.release, nil
}
