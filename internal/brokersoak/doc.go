// Package brokersoak runs factorywire's broker under hostile clients for a
// while and checks that it loses no acknowledged record and keeps its
// resources within the limits it is configured with (issue 13). The
// command cmd/brokersoak is its command line; docs/OPERATIONS.md ("Soak
// test: the broker under hostile clients") explains how to read a report.
//
// Run builds the broker (or takes a binary), writes a broker config with
// low limits into a work directory and starts `broker serve --config F` as
// a child process on 127.0.0.1 and an ephemeral port. Next to it:
//
//   - a producer/consumer pair (franz-go): an idempotent producer with
//     acks=all offers keyed records at a steady rate, each value holding
//     its key's sequence number, and records every acknowledged (topic,
//     partition, offset, key, sequence); a consumer group member reads
//     them back. After the hostile clients stop, the consumer drains, and a
//     final read of every partition from its start checks the log itself:
//     acknowledged records lost (must be 0), duplicates and reorders per
//     key;
//   - hostile clients, each a bounded loop with counters of its outcomes
//     (see Kinds): connection floods over several source addresses and
//     from one, slowloris, a 100 MiB announcement, a fetcher that never
//     reads, malformed record batches with a correct CRC, garbage frames,
//     CreateTopics storms past max_partitions, consumer group churn whose
//     offsets must expire, idle connections, and reads of old offsets that
//     open closed segments. Each dials from its own 127.0.N.x address, so
//     per-address limits tell it apart from the pair (127.0.0.1);
//   - a sampler of the broker's RSS and open files every second.
//
// The report compares the peak open files with max_connections +
// max_partitions × 3 + max_open_closed_segments × 3 + 64, and the peak RSS
// with a baseline measured after the warm-up plus queued_max_request_bytes
// and queued_max_response_bytes; it counts the limit hits the broker logged
// (and, given its metrics endpoint, counted).
//
// Linux only: it reads /proc and dials from 127.0.N.x.
package brokersoak
