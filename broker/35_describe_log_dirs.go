package broker

import (
	"path/filepath"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeLogDirs v1–4, as Apache Kafka 4.1 (KIP-896 removed v0; v5, the
// cordoned flag of KIP-1066, is not in 4.1).
//
// The broker has one log directory, the data dir, reported by its absolute
// path. Every open partition asked for (all of them when Topics is null) is
// listed with the bytes of its segment (.log) files, as Kafka's log size
// counts them; OffsetLag is 0 (no replica lags on one node) and IsFuture
// false (no AlterReplicaLogDirs). Topics and partitions that do not exist
// are left out, as Kafka leaves them out. Deviations: an offline partition
// (a log that could not be opened) is left out too, where Kafka, whose
// failures take a whole log dir offline, would answer the dir with
// KAFKA_STORAGE_ERROR; the committed offsets (Kafka's __consumer_offsets)
// are not listed. TotalBytes and UsableBytes (v4) are the data dir's file
// system size and the bytes still writable there, -1 if statfs fails.

func init() { regKey(int16(kmsg.DescribeLogDirs), 1, 4, handleDescribeLogDirs) }

func handleDescribeLogDirs(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)

	// Authorization: DESCRIBE on the cluster, else
	// CLUSTER_AUTHORIZATION_FAILED in ErrorCode (v3+) with no dirs (v1–2:
	// no dirs only), as Kafka.
	if !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}

	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.cfg.DataDir
	if abs, err := filepath.Abs(b.cfg.DataDir); err == nil {
		dir.Dir = abs
	}
	if total, usable, err := diskSpace(b.cfg.DataDir); err == nil {
		dir.TotalBytes, dir.UsableBytes = total, usable
	}
	// describe lists the partitions of topic name: all of them, or those
	// in only.
	describe := func(name string, ps []*partition, all bool, only []int32) {
		t := kmsg.NewDescribeLogDirsResponseDirTopic()
		t.Topic = name
		add := func(p *partition) {
			if p.log == nil {
				return // offline
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition, dp.Size = p.index, p.log.Size()
			t.Partitions = append(t.Partitions, dp)
		}
		if all {
			for _, p := range ps {
				add(p)
			}
		} else {
			seen := map[int32]bool{}
			for _, i := range only {
				if i >= 0 && int(i) < len(ps) && !seen[i] {
					seen[i] = true
					add(ps[i])
				}
			}
			sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Partition < t.Partitions[j].Partition })
		}
		if len(t.Partitions) > 0 {
			dir.Topics = append(dir.Topics, t)
		}
	}
	if req.Topics == nil {
		for _, t := range b.sortedTopics() {
			describe(t.meta.Name, t.partitions, true, nil)
		}
	} else {
		seen := map[string]bool{}
		for _, rt := range req.Topics {
			t := b.topic(rt.Topic)
			if t == nil || seen[rt.Topic] {
				continue
			}
			seen[rt.Topic] = true
			describe(rt.Topic, t.partitions, false, rt.Partitions)
		}
	}
	resp.Dirs = append(resp.Dirs, dir)
	return reply{resp: resp}, nil
}
