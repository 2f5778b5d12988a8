'use strict'
// produce.js sends keyed records with an idempotent kafkajs producer
// (acks -1, one request in flight) and reports every acknowledged send.
//
// Arguments: --brokers=host:port --topic=T --count=N [--keys=10]
//   [--codec=none|gzip] [--batch=50 records per send] [--prefix=v]
//   [--pace-ms=0 pause between sends] [--client-id=kafkajs-producer]
//   [--pause-at=N: after N records are acknowledged, print {"type":"paused"}
//   and wait until a line comes on stdin, if none came yet] [--max-ms=50000]
//   [TLS and SASL options: see security() in lib.js]
// Record i has key "dev-<i mod keys>", value "<prefix>-<i>" and header seq=i.
// Output lines:
//   {"type":"ack","first":i,"n":k,"meta":[{"p":partition,"base":"offset"}]}
//   {"type":"done","acked":N} then {"type":"exit","why":"done"}
const { CompressionTypes, Partitioners } = require('kafkajs')
const { parseArgs, emit, newKafka, lifecycle } = require('./lib')

const args = parseArgs(process.argv)
const count = Number(args.count)
const keys = Number(args.keys || 10)
const batch = Number(args.batch || 50)
const paceMs = Number(args['pace-ms'] || 0)
const prefix = args.prefix || 'v'
const pauseAt = Number(args['pause-at'] || 0)
const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }[args.codec || 'none']
if (compression === undefined) {
  throw new Error(`codec ${args.codec}: kafkajs core supports none and gzip only`)
}

const kafka = newKafka({ 'client-id': 'kafkajs-producer', ...args })
const producer = kafka.producer({
  idempotent: true,
  maxInFlightRequests: 1,
  createPartitioner: Partitioners.DefaultPartitioner, // murmur2, as Java's
  retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1000 },
})

let stopped = false
const finish = lifecycle(Number(args['max-ms'] || 50000), async () => {
  stopped = true
  await producer.disconnect()
})

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
// resumed: whether a line came on stdin (before or during the pause).
let resumed = false
let wake = () => {}
process.stdin.on('data', () => {
  resumed = true
  wake()
})
const untilResumed = () => (resumed ? Promise.resolve() : new Promise(resolve => (wake = resolve)))

async function main() {
  await producer.connect()
  let acked = 0
  for (let first = 0; first < count && !stopped; first += batch) {
    const messages = []
    for (let i = first; i < Math.min(first + batch, count); i++) {
      messages.push({ key: `dev-${i % keys}`, value: `${prefix}-${i}`, headers: { seq: String(i) } })
    }
    const meta = await producer.send({ topic: args.topic, acks: -1, compression, messages })
    acked += messages.length
    emit({
      type: 'ack',
      first,
      n: messages.length,
      meta: meta.map(m => ({ p: m.partition, base: String(m.baseOffset), err: m.errorCode })),
    })
    if (pauseAt > 0 && acked >= pauseAt && acked - messages.length < pauseAt) {
      emit({ type: 'paused', acked })
      await untilResumed()
    }
    if (paceMs > 0) await sleep(paceMs)
  }
  emit({ type: 'done', acked })
  await finish(0, 'done')
}

main().catch(e => {
  emit({ type: 'error', where: 'produce', error: String(e && e.message), name: e && e.name })
  finish(1, 'error')
})
