package topics

import "github.com/twmb/franz-go/pkg/kgo"

// keyPartitioner is franz-go's implementation of Kafka's default key
// partitioning; it keeps no state for records with keys.
var keyPartitioner = kgo.StickyKeyPartitioner(nil).ForTopic("")

// Partition returns the partition Kafka's default partitioner (the Java
// client's, librdkafka's murmur2_random, franz-go's StickyKeyPartitioner)
// assigns a record with key, not nil, among n partitions: the positive part
// of murmur2(key) modulo n. So a device id always maps to the same
// partition, whichever of those clients produced it. Sarama's default
// (FNV-1a) and librdkafka's default (consistent_random, CRC-32) map keys
// elsewhere; docs/COMPATIBILITY.md lists which producer settings agree.
func Partition(key []byte, n int32) int32 {
	return int32(keyPartitioner.Partition(&kgo.Record{Key: key}, int(n)))
}
