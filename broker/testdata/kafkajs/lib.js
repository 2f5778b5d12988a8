'use strict'
// Shared by the kafkajs scripts that broker/compat_kafkajs_test.go drives.
//
// Protocol between the Go test and a script:
//   - arguments are --name=value pairs (see each script);
//   - the script prints one JSON object per line on stdout (its events);
//     kafkajs's own logs go to stderr, so stdout stays machine-readable;
//   - the script stops gracefully (disconnects, which commits and leaves
//     the group) when its stdin closes, and in any case after --max-ms
//     (exit code 3), so it never outlives a test that forgot it.

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

function parseArgs(argv) {
  const args = {}
  for (const a of argv.slice(2)) {
    const m = /^--([^=]+)=(.*)$/s.exec(a)
    if (!m) {
      throw new Error(`argument ${JSON.stringify(a)} is not --name=value`)
    }
    args[m[1]] = m[2]
  }
  return args
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// stderrLogger writes kafkajs logs as JSON lines to stderr.
const stderrLogger = () => ({ namespace, label, log }) => {
  const { message, ...rest } = log
  process.stderr.write(JSON.stringify({ level: label, ns: namespace, message, ...rest }) + '\n')
}

// security returns the ssl and sasl options of the Kafka client from
//   [--ca-file=PEM: TLS, trusting only this CA] [--cert-file=PEM --key-file=PEM:
//   a client certificate, mutual TLS] [--sasl-mechanism=plain|scram-sha-256|
//   scram-sha-512 --sasl-username=U --sasl-password-file=F: SASL, the password
//   read from a file so it is on no command line].
function security(args) {
  const opts = {}
  if (args['ca-file']) {
    opts.ssl = { ca: [fs.readFileSync(args['ca-file'], 'utf8')] }
    if (args['cert-file']) {
      opts.ssl.cert = fs.readFileSync(args['cert-file'], 'utf8')
      opts.ssl.key = fs.readFileSync(args['key-file'], 'utf8')
    }
  }
  if (args['sasl-mechanism']) {
    opts.sasl = {
      mechanism: args['sasl-mechanism'],
      username: args['sasl-username'],
      password: fs.readFileSync(args['sasl-password-file'], 'utf8'),
    }
  }
  return opts
}

function newKafka(args) {
  return new Kafka({
    clientId: args['client-id'] || 'kafkajs',
    brokers: [args.brokers],
    ...security(args),
    connectionTimeout: 3000,
    requestTimeout: 10000,
    logLevel: args['log-level'] === 'debug' ? logLevel.DEBUG : logLevel.WARN,
    logCreator: stderrLogger,
    // Reconnect quickly while the test restarts the broker.
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 30 },
  })
}

// lifecycle calls stop() once, when stdin closes or after maxMs, then exits.
function lifecycle(maxMs, stop) {
  let stopping = false
  const finish = async (code, why) => {
    if (stopping) return
    stopping = true
    // A stop that hangs must not keep the process alive.
    setTimeout(() => process.exit(code === 0 ? 4 : code), 10000).unref()
    try {
      await stop(why)
    } catch (e) {
      emit({ type: 'error', where: 'stop', error: String(e && e.message) })
    }
    emit({ type: 'exit', why })
    process.exit(code)
  }
  const timer = setTimeout(() => finish(3, 'max-ms'), maxMs)
  timer.unref()
  process.stdin.on('end', () => finish(0, 'stdin'))
  process.stdin.on('error', () => finish(0, 'stdin'))
  process.stdin.resume()
  process.on('SIGTERM', () => finish(0, 'sigterm'))
  // Keeps the event loop alive while only unref'd timers are left.
  setInterval(() => {}, 1000)
  return finish
}

module.exports = { parseArgs, emit, newKafka, lifecycle }
