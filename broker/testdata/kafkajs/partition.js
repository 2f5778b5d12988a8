'use strict'
// partition.js prints where kafkajs's default partitioner (murmur2, as the
// Java client's) puts each key, for each partition count. No broker needed.
//
// Arguments: --keys='["key", ...]' (JSON) --counts=3,6,16
// Output lines: {"key":"k","count":6,"p":2}
const { Partitioners } = require('kafkajs')
const { parseArgs, emit } = require('./lib')

const args = parseArgs(process.argv)
const keys = JSON.parse(args.keys)
const partitioner = Partitioners.DefaultPartitioner()
for (const count of args.counts.split(',').map(Number)) {
  const partitionMetadata = Array.from({ length: count }, (_, i) => ({ partitionId: i, leader: 0 }))
  for (const key of keys) {
    emit({ key, count, p: partitioner({ topic: 't', partitionMetadata, message: { key, value: null } }) })
  }
}
