// Package topics is factorywire's topic naming grammar, its key
// partitioning, and the mapping from topic to MongoDB collection.
//
// # Grammar
//
//	topic    = [ prefix "." ] factory "." class [ ".dlq" ]
//	segment  = 1 to 64 of [a-z0-9-], not starting or ending with '-', not "dlq"
//
// Examples: plant-a.press (the presses of plant-a), prod.plant-a.press (the
// same under the deployment prefix prod), plant-a.press.dlq (its dead
// letters). A name is at most 3×64+2+4 = 198 characters, under Kafka's 249.
// Segments never hold '.' or '_': Kafka maps both to '_' in metric names, so
// topics mixing them could collide. "dlq" is reserved as a segment so that
// a trailing .dlq always marks a dead-letter topic and every name parses one
// way only.
//
// # Keys and partitions
//
// Record key = device id; Partition gives Kafka's default mapping,
// murmur2(key) mod partitions, so one device stays on one partition and keeps
// its order whichever Kafka-compatible client produced it.
//
// # Collections
//
// The sink writes the samples of topic T, and nothing else, into the
// MongoDB time-series collection named T (Name.Collection); dead-letter
// topics have no collection.
//
//	n, err := topics.Parse("plant-a.press")
//	n.DeadLetter().String() // "plant-a.press.dlq"
//	n.Collection()          // "plant-a.press"
package topics
