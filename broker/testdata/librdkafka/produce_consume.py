#!/usr/bin/env python3
"""librdkafka, through confluent-kafka, as a test peer of the broker.

Produces --count records to --topic with acks=all (record i keyed
"dev-<i mod 10>", value "<prefix>-<i>"), then reads --count records of the
topic back as a member of consumer group --group from the earliest offset
and commits; --mode=produce or --mode=consume does one half only.

The connection is configured as librdkafka names it: --bootstrap,
--security-protocol, --sasl-mechanism, --sasl-username, --ssl-ca-location,
--ssl-certificate-location, --ssl-key-location. The SASL password is read
from --sasl-password-file, so that it is on no command line, and is never
printed.

Stdout is one JSON object per line:
  {"type":"start","client":"confluent-kafka 2.16.2","librdkafka":"2.16.0"}
  {"type":"ack","partition":0,"offset":3}         a record acknowledged
  {"type":"rec","partition":0,"offset":3,"key":"dev-3","value":"v-3"}
  {"type":"error","name":"_TRANSPORT","code":-195,"error":"...","fatal":false}
  {"type":"done","mode":"produce","acked":5} / {"type":"done","mode":"consume","consumed":5}
  {"type":"fail","name":"_AUTHENTICATION","code":-169,"error":"..."}  then exit 1
An error event is every error librdkafka reports; an authentication error
or a fatal one ends the run with a fail line. Every wait is bounded by
--timeout seconds per half; running out of it is a fail line too.
"""

import argparse
import json
import sys
import time

import confluent_kafka as ck


def emit(**event):
    print(json.dumps(event), flush=True)


class Failed(Exception):
    """The run failed; name and message are librdkafka's when it reported it."""

    def __init__(self, name, code, message):
        super().__init__(message)
        self.name, self.code, self.message = name, code, message


class Errors:
    """error_cb: reports every error, remembers the first that ends the run."""

    def __init__(self):
        self.stop = None

    def __call__(self, err):
        emit(type="error", name=err.name(), code=err.code(), error=err.str(), fatal=err.fatal())
        if self.stop is None and (err.code() == ck.KafkaError._AUTHENTICATION or err.fatal()):
            self.stop = Failed(err.name(), err.code(), err.str())

    def check(self):
        if self.stop is not None:
            raise self.stop


def config(args, errors):
    conf = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": args.security_protocol,
        "client.id": args.client_id,
        "error_cb": errors,
    }
    if args.ssl_ca_location:
        conf["ssl.ca.location"] = args.ssl_ca_location
    if args.ssl_certificate_location:
        conf["ssl.certificate.location"] = args.ssl_certificate_location
        conf["ssl.key.location"] = args.ssl_key_location
    if args.sasl_mechanism:
        conf["sasl.mechanism"] = args.sasl_mechanism
        conf["sasl.username"] = args.sasl_username
        with open(args.sasl_password_file, encoding="utf-8") as f:
            conf["sasl.password"] = f.read().rstrip("\r\n")
    return conf


def produce(args, errors):
    conf = config(args, errors)
    conf.update({"acks": "all", "linger.ms": 0, "message.timeout.ms": int(args.timeout * 1000)})
    p = ck.Producer(conf)
    acked, failed = 0, []

    def delivered(err, msg):
        nonlocal acked
        if err is not None:
            emit(type="error", name=err.name(), code=err.code(), error=err.str(), fatal=err.fatal())
            failed.append(err)
            return
        acked += 1
        emit(type="ack", partition=msg.partition(), offset=msg.offset())

    try:
        for i in range(args.count):
            p.produce(args.topic, key="dev-%d" % (i % 10), value="%s-%d" % (args.prefix, i), on_delivery=delivered)
        deadline = time.monotonic() + args.timeout
        while acked + len(failed) < args.count:
            p.poll(0.05)
            errors.check()
            if time.monotonic() > deadline:
                raise Failed("timeout", 0, "%d of %d records acknowledged in %g s" % (acked, args.count, args.timeout))
        if failed:
            raise Failed(failed[0].name(), failed[0].code(), failed[0].str())
    finally:
        p.purge()  # what is left undelivered is dropped, so flush returns at once
        p.flush(5)
    emit(type="done", mode="produce", acked=acked)


def consume(args, errors):
    conf = config(args, errors)
    conf.update({
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c = ck.Consumer(conf)
    got = 0
    try:
        c.subscribe([args.topic])
        deadline = time.monotonic() + args.timeout
        while got < args.count:
            msg = c.poll(0.05)
            errors.check()
            if time.monotonic() > deadline:
                raise Failed("timeout", 0, "%d of %d records consumed in %g s" % (got, args.count, args.timeout))
            if msg is None:
                continue
            if msg.error() is not None:
                err = msg.error()
                emit(type="error", name=err.name(), code=err.code(), error=err.str(), fatal=err.fatal())
                if err.fatal():
                    raise Failed(err.name(), err.code(), err.str())
                continue
            got += 1
            key = msg.key()
            emit(type="rec", partition=msg.partition(), offset=msg.offset(),
                 key=None if key is None else key.decode("utf-8", "replace"),
                 value=msg.value().decode("utf-8", "replace"))
        c.commit(asynchronous=False)
    finally:
        c.close()  # leaves the group
    emit(type="done", mode="consume", consumed=got)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--security-protocol", default="PLAINTEXT")
    ap.add_argument("--sasl-mechanism")
    ap.add_argument("--sasl-username")
    ap.add_argument("--sasl-password-file")
    ap.add_argument("--ssl-ca-location")
    ap.add_argument("--ssl-certificate-location")
    ap.add_argument("--ssl-key-location")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--prefix", default="v")
    ap.add_argument("--group", help="consumer group (default: <topic>-readers)")
    ap.add_argument("--client-id", default="factorywire-librdkafka")
    ap.add_argument("--mode", choices=("both", "produce", "consume"), default="both")
    ap.add_argument("--timeout", type=float, default=30, help="seconds each half may take")
    args = ap.parse_args()
    if args.sasl_mechanism and not (args.sasl_username and args.sasl_password_file):
        ap.error("--sasl-mechanism needs --sasl-username and --sasl-password-file")
    if bool(args.ssl_certificate_location) != bool(args.ssl_key_location):
        ap.error("--ssl-certificate-location and --ssl-key-location go together")
    args.group = args.group or args.topic + "-readers"

    version = ck.version()  # a (string, int) tuple before 2.16, a string from then on
    if isinstance(version, tuple):
        version = version[0]
    emit(type="start", client="confluent-kafka " + version, librdkafka=ck.libversion()[0])
    errors = Errors()
    try:
        if args.mode in ("both", "produce"):
            produce(args, errors)
        if args.mode in ("both", "consume"):
            consume(args, errors)
    except (Failed, ck.KafkaException) as e:
        if isinstance(e, ck.KafkaException):
            err = e.args[0]
            e = Failed(err.name(), err.code(), err.str())
        emit(type="fail", name=e.name, code=e.code, error=e.message)
        print("produce_consume.py: %s: %s" % (e.name, e.message), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
