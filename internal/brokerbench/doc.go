// Package brokerbench measures factorywire's broker against its references
// in the same run: kfake, the reference single-node Go broker, and Apache
// Kafka (one KRaft node) with an fsync before every ack (kafka-fsync, as
// ours) and as shipped (kafka, page cache only). The command
// cmd/brokerbench is its command line; docs/BENCHMARKS.md explains
// the method and holds the figures.
//
// Run starts a fresh broker for every measurement, each in a child process
// so that the memory and CPU time read from /proc are the broker's alone:
// ours, kfake and kfake with BlackholeProduce (the client's ceiling) in
// the running binary re-executed with ChildEnv set (ServeChild serves
// them; whichever binary calls Run must dispatch on ChildEnv first), and
// Apache Kafka as a java process started through internal/kafkatest with
// Kafka's own JVM options, after an untimed JIT warm-up. The clients run
// in this process. Per run, the brokers in rotating order:
//
//   - throughput: one franz-go producer writes Records (100 B) or
//     RecordsLarge (1000 B) records into 1 or 8 partitions as fast as it
//     can, acks=all, then one consumer reads them all back from offset 0;
//   - capacity: Producers clients each keep InFlight pre-encoded Produce
//     requests of BatchRecords records outstanding;
//   - ack latency: a producer offers LatencyRate records per second for
//     LatencyDuration, with kgo's default linger and with none;
//
// then, once per broker, the memory run: RSSRecords records into 8
// partitions, the broker's VmRSS sampled as retained data grows and after
// consuming it all. With ours-sasl-ssl among the brokers, ours also runs
// behind a SASL_SSL listener (TLS verified against a CA made for the run,
// SCRAM-SHA-512 as a bootstrapped user), and the report compares it with
// ours plain.
//
// A run fails unless every acknowledged record is consumed back in offset
// order with no gap or duplicate and the end offsets equal the
// acknowledged counts; a failed run is listed in the report and the rest
// go on. The report (Markdown) gives medians per broker and scenario, the
// ratios of ours over each reference, CPU time of the broker and of the
// clients, the other load on the machine during each phase (runs that
// shared the machine with more than QuietCores cores of other load are
// left out of the medians, unless none was that quiet), and the machine
// and the fsync latency of the data directory's disk.
//
// Linux only: it reads /proc.
package brokerbench
