'use strict'
// consume.js is one kafkajs consumer group member. It reports its group
// joins (with the assignment it received), every record it processed, its
// offset commits and crashes. Offsets are committed by kafkajs's auto
// commit (after each batch) and once more on a graceful stop.
//
// Arguments: --brokers=host:port --topic=T --group=G [--client-id=...]
//   [--max-ms=50000] [--log-level=warn|debug]
//   [TLS and SASL options: see security() in lib.js]
// Output lines:
//   {"type":"join","member":"id","leader":bool,"assignment":[partitions]}
//   {"type":"rec","p":partition,"o":"offset","k":"key","v":"value"}
//   {"type":"commit","offsets":[{"p":partition,"o":"offset"}]}
//   {"type":"rebalancing"} {"type":"crash","error":"...","restart":bool}
//   {"type":"exit","why":"stdin|max-ms|sigterm|crash"}
// A crash kafkajs does not restart from ends the script with exit code 1.
const { parseArgs, emit, newKafka, lifecycle } = require('./lib')

const args = parseArgs(process.argv)
const kafka = newKafka({ 'client-id': 'kafkajs-consumer', ...args })
const consumer = kafka.consumer({
  groupId: args.group,
  sessionTimeout: 10000,
  rebalanceTimeout: 20000,
  heartbeatInterval: 300,
  maxWaitTimeInMs: 200,
  retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 30 },
})
const { GROUP_JOIN, COMMIT_OFFSETS, REBALANCING, CRASH } = consumer.events

consumer.on(GROUP_JOIN, e => {
  const { payload } = e
  emit({
    type: 'join',
    member: payload.memberId,
    leader: payload.isLeader,
    assignment: (payload.memberAssignment[args.topic] || []).slice().sort((a, b) => a - b),
  })
})
consumer.on(COMMIT_OFFSETS, e => {
  const offsets = []
  for (const t of e.payload.topics) {
    for (const p of t.partitions) offsets.push({ p: Number(p.partition), o: String(p.offset) })
  }
  emit({ type: 'commit', offsets })
})
consumer.on(REBALANCING, () => emit({ type: 'rebalancing' }))

const finish = lifecycle(Number(args['max-ms'] || 50000), async () => {
  await consumer.disconnect() // commits resolved offsets, leaves the group
})

consumer.on(CRASH, e => {
  emit({ type: 'crash', error: String(e.payload.error && e.payload.error.message), restart: e.payload.restart })
  if (!e.payload.restart) finish(1, 'crash') // kafkajs gave up: nothing more will come
})

async function main() {
  await consumer.connect()
  await consumer.subscribe({ topics: [args.topic], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      emit({
        type: 'rec',
        p: partition,
        o: String(message.offset),
        k: message.key ? message.key.toString() : null,
        v: message.value ? message.value.toString() : null,
      })
    },
  })
}

main().catch(e => {
  emit({ type: 'error', where: 'consume', error: String(e && e.message), name: e && e.name })
  finish(1, 'error')
})
