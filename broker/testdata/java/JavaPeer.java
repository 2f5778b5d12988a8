// JavaPeer drives Apache Kafka's Java client (kafka-clients) for the
// broker's compatibility test (broker/compat_java_test.go). One JVM hosts
// every producer, reader and group member of one scenario, so the JVM
// starts once, and the events of all of them come in one stream whose order
// is the order they happened in.
//
// It reads commands from stdin, one per line, fields separated by one
// space. A string field is "b" + base64(UTF-8 bytes), or "-" for null;
// headers are "-" or comma-separated "key:value" pairs of such fields, and
// so are PROPS, client properties added to (or replacing) the defaults, e.g.
// security.protocol and sasl.jaas.config; PROPS may be left out.
//
//   producer ID BOOTSTRAP TOPIC CODEC CLIENT_ID [PROPS]
//                                                  an idempotent acks=all producer, default partitioner
//   rec ID REQ KEY VALUE HEADERS                   send a record with producer ID as part of request REQ
//   flush ID REQ N                                 N records were sent for REQ: report when all are acknowledged
//   close ID                                       close producer ID
//   read REQ BOOTSTRAP TOPIC CLIENT_ID P=END,... [PROPS]
//                                                  read each partition from its start up to END, without a group
//   member NAME BOOTSTRAP TOPIC GROUP ASSIGNOR CLIENT_ID
//                                                  a classic-protocol group member committing with commitSync
//   leave NAME                                     commit, close() (which leaves the group), report "left"
//   synced NAME SEQ                                the test has taken in everything before "sync NAME SEQ"
//   partitions REQ COUNT,... KEY...                the partitions the default partitioner picks
//
// and prints events on stdout, one per line:
//
//   ok REQ | failed REQ MESSAGE | done REQ N
//   acked REQ N P:OFFSET,...                      every record of REQ acknowledged, where each was written
//   rrec REQ P OFFSET KEY VALUE HEADERS            a record read for REQ
//   mrec NAME P OFFSET KEY VALUE HEADERS           a record member NAME processed
//   assigned|revoked|lost NAME P,...|-             rebalance callbacks, as the client calls them
//   sync NAME SEQ                                  member NAME waits for "synced NAME SEQ" before it commits
//   left NAME | note MESSAGE | parts REQ COUNT P,...
//
// A member prints the records of one poll, then waits until the test has
// taken them in (sync/synced), then commits them: an offset the broker holds
// as committed was always reported as processed first. The Java client's
// own log goes to stderr (log4j2, configured by the test).
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaPeer {
    private static final BufferedWriter OUT =
        new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);

    private static final Map<String, Producer> producers = new ConcurrentHashMap<>();
    private static final Map<String, Member> members = new ConcurrentHashMap<>();

    /** emit writes lines as one unit and flushes them. */
    static void emit(CharSequence lines) {
        synchronized (OUT) {
            try {
                OUT.append(lines);
                if (lines.length() > 0 && lines.charAt(lines.length() - 1) != '\n') {
                    OUT.append('\n');
                }
                OUT.flush();
            } catch (Exception e) {
                System.exit(3); // stdout is gone: the test has ended
            }
        }
    }

    static String enc(byte[] b) {
        return b == null ? "-" : "b" + Base64.getEncoder().encodeToString(b);
    }

    static String enc(String s) {
        return s == null ? "-" : enc(s.getBytes(StandardCharsets.UTF_8));
    }

    static byte[] dec(String f) {
        if (f.equals("-")) {
            return null;
        }
        if (!f.startsWith("b")) {
            throw new IllegalArgumentException("bad field " + f);
        }
        return Base64.getDecoder().decode(f.substring(1));
    }

    static String headers(Iterable<Header> hs) {
        StringBuilder sb = new StringBuilder();
        for (Header h : hs) {
            if (sb.length() > 0) {
                sb.append(',');
            }
            sb.append(enc(h.key())).append(':').append(enc(h.value()));
        }
        return sb.length() == 0 ? "-" : sb.toString();
    }

    static List<Header> headers(String f) {
        List<Header> out = new ArrayList<>();
        if (f.equals("-")) {
            return out;
        }
        for (String kv : f.split(",")) {
            String[] p = kv.split(":", 2);
            out.add(new RecordHeader(new String(dec(p[0]), StandardCharsets.UTF_8), dec(p[1])));
        }
        return out;
    }

    /** props decodes the optional PROPS field f[i] (key:value pairs of string fields). */
    static Map<String, String> props(String[] f, int i) {
        Map<String, String> out = new HashMap<>();
        if (f.length <= i) {
            return out;
        }
        for (Header h : headers(f[i])) {
            out.put(h.key(), new String(h.value(), StandardCharsets.UTF_8));
        }
        return out;
    }

    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(e.toString());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            sb.append(" <- ").append(c);
        }
        return sb.toString();
    }

    static void note(String who, Throwable e) {
        emit("note " + enc(who + ": " + describe(e)));
    }

    static String parts(Collection<TopicPartition> tps) {
        StringBuilder sb = new StringBuilder();
        for (TopicPartition tp : tps) {
            if (sb.length() > 0) {
                sb.append(',');
            }
            sb.append(tp.partition());
        }
        return sb.length() == 0 ? "-" : sb.toString();
    }

    /** Producer is one KafkaProducer; a single thread sends its records in command order. */
    static final class Producer {
        final KafkaProducer<byte[], byte[]> kp;
        final String topic;
        final ExecutorService sender = Executors.newSingleThreadExecutor();
        final Map<String, Request> requests = new ConcurrentHashMap<>();

        static final class Request {
            final AtomicInteger acked = new AtomicInteger();
            final AtomicReference<Exception> failure = new AtomicReference<>();
            volatile int expected = -1; // set by flush
            final AtomicInteger reported = new AtomicInteger();
            final Map<Integer, String> at = new ConcurrentHashMap<>(); // record index -> "partition:offset"
            int sent; // records handed to send, on the sender thread
        }

        Producer(String bootstrap, String topic, String codec, String clientId, Map<String, String> props) {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5");
            p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
            p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "40000");
            p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
            p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, "100");
            p.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, "1000");
            p.put(ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, "50");
            p.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
            // No partitioner.class: Kafka 4's default partitioning
            // (BuiltInPartitioner: murmur2 of the key for keyed records).
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            p.putAll(props);
            this.kp = new KafkaProducer<>(p);
            this.topic = topic;
        }

        void send(String req, byte[] key, byte[] value, List<Header> hs) {
            Request r = requests.computeIfAbsent(req, k -> new Request());
            sender.execute(() -> {
                int i = r.sent++;
                try {
                    kp.send(new ProducerRecord<>(topic, null, null, key, value, hs), (md, e) -> {
                        if (e != null) {
                            r.failure.compareAndSet(null, e);
                        } else {
                            r.at.put(i, md.partition() + ":" + md.offset());
                        }
                        r.acked.incrementAndGet();
                        maybeReport(req, r);
                    });
                } catch (Exception e) {
                    r.failure.compareAndSet(null, e);
                    r.acked.incrementAndGet();
                    maybeReport(req, r);
                }
            });
        }

        void flush(String req, int n) {
            Request r = requests.computeIfAbsent(req, k -> new Request());
            sender.execute(() -> {
                r.expected = n;
                maybeReport(req, r);
            });
        }

        void maybeReport(String req, Request r) {
            int n = r.expected;
            if (n < 0 || r.acked.get() < n || !r.reported.compareAndSet(0, 1)) {
                return;
            }
            requests.remove(req);
            Exception e = r.failure.get();
            if (e != null) {
                emit("failed " + req + " " + enc(describe(e)));
                return;
            }
            StringBuilder sb = new StringBuilder("acked ").append(req).append(' ').append(n).append(' ');
            for (int i = 0; i < n; i++) {
                sb.append(i > 0 ? "," : "").append(r.at.get(i));
            }
            if (n == 0) {
                sb.append('-');
            }
            emit(sb);
        }

        void close() {
            sender.shutdown();
            try {
                sender.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            kp.close(Duration.ofSeconds(10));
        }
    }

    static Properties consumerProps(String bootstrap, String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", clientId);
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("fetch.max.wait.ms", "100");
        p.put("request.timeout.ms", "10000");
        p.put("default.api.timeout.ms", "20000");
        p.put("retry.backoff.ms", "100");
        p.put("retry.backoff.max.ms", "1000");
        p.put("reconnect.backoff.ms", "50");
        p.put("reconnect.backoff.max.ms", "1000");
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        return p;
    }

    /** read reads partitions from their start up to their given ends, then reports done. */
    static void read(String req, String bootstrap, String topic, String clientId, String ends, Map<String, String> props) {
        Map<TopicPartition, Long> want = new HashMap<>();
        for (String pe : ends.split(",")) {
            String[] f = pe.split("=");
            long end = Long.parseLong(f[1]);
            if (end > 0) {
                want.put(new TopicPartition(topic, Integer.parseInt(f[0])), end);
            }
        }
        int n = 0;
        Properties cp = consumerProps(bootstrap, clientId);
        cp.putAll(props);
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
            c.assign(want.keySet());
            c.seekToBeginning(want.keySet());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            Map<TopicPartition, Long> remaining = new HashMap<>(want);
            while (!remaining.isEmpty()) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("partitions " + remaining + " not read to their ends in 30 s");
                }
                StringBuilder sb = new StringBuilder();
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    Long end = remaining.get(tp);
                    if (end == null || r.offset() >= end) {
                        continue;
                    }
                    n++;
                    sb.append("rrec ").append(req).append(' ').append(r.partition()).append(' ').append(r.offset())
                        .append(' ').append(enc(r.key())).append(' ').append(enc(r.value()))
                        .append(' ').append(headers(r.headers())).append('\n');
                    if (r.offset() + 1 >= end) {
                        remaining.remove(tp);
                    }
                }
                emit(sb);
            }
            emit("done " + req + " " + n);
        } catch (Exception e) {
            emit("failed " + req + " " + enc(describe(e)));
        }
    }

    /** Member is one consumer group member on its own thread. */
    static final class Member implements ConsumerRebalanceListener {
        final String name;
        final KafkaConsumer<byte[], byte[]> c;
        final String topic;
        volatile boolean leaving;
        final LinkedBlockingQueue<Long> synced = new LinkedBlockingQueue<>();
        long seq;
        String lastFailure; // the last commit failure noted, to note each kind once per assignment
        // processed but not yet committed: partition -> next offset
        final Map<TopicPartition, OffsetAndMetadata> pending = new HashMap<>();

        Member(String name, String bootstrap, String topic, String group, String assignor, String clientId) {
            Properties p = consumerProps(bootstrap, clientId);
            p.put("group.id", group);
            p.put("group.protocol", "classic");
            p.put("partition.assignment.strategy", assignor);
            p.put("session.timeout.ms", "6000");
            p.put("heartbeat.interval.ms", "300");
            p.put("max.poll.interval.ms", "20000");
            p.put("max.poll.records", "200");
            this.name = name;
            this.topic = topic;
            this.c = new KafkaConsumer<>(p);
        }

        /** sync waits until the test has taken in every line printed so far (bounded). */
        void sync() {
            long s = ++seq;
            emit("sync " + name + " " + s);
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (System.nanoTime() < deadline) {
                    Long got = synced.poll(100, TimeUnit.MILLISECONDS);
                    if (got != null && got == s) {
                        return;
                    }
                }
                emit("note " + enc(name + ": no synced " + s + " from the test in 20 s"));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /**
         * commit commits the offsets processed since the last commit. A
         * failed commit keeps them for the next attempt (after the poll
         * that completes a rebalance): a partition's offset leaves pending
         * only once committed, or when the partition is revoked or lost.
         */
        void commit(String why) {
            for (int attempt = 0; !pending.isEmpty(); attempt++) {
                try {
                    c.commitSync(new HashMap<>(pending), Duration.ofSeconds(15));
                    pending.clear();
                    return;
                } catch (WakeupException e) {
                    if (attempt > 0) {
                        return;
                    }
                    // leave woke the consumer up (once): commit again
                } catch (RebalanceInProgressException e) {
                    // The cooperative protocol keeps consuming while the
                    // group rebalances; commits wait for it to complete.
                    return;
                } catch (Exception e) {
                    // e.g. CommitFailedException after the group moved on:
                    // onPartitionsLost follows, and whoever owns those
                    // partitions now processes the records again
                    // (at-least-once).
                    String msg = e.getClass().getSimpleName();
                    if (!msg.equals(lastFailure)) {
                        lastFailure = msg;
                        note(name + " commit (" + why + ")", e);
                    }
                    return;
                }
            }
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> tps) {
            commit("revoke");
            pending.keySet().removeAll(tps); // no longer ours to commit
            emit("revoked " + name + " " + parts(tps));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> tps) {
            lastFailure = null;
            emit("assigned " + name + " " + parts(tps));
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> tps) {
            pending.keySet().removeAll(tps); // the group moved on: a commit would be refused
            emit("lost " + name + " " + parts(tps));
        }

        void run() {
            try {
                c.subscribe(List.of(topic), this);
                while (!leaving) {
                    ConsumerRecords<byte[], byte[]> recs;
                    try {
                        recs = c.poll(Duration.ofMillis(100));
                    } catch (WakeupException e) {
                        break;
                    } catch (Exception e) {
                        note(name + " poll", e);
                        Thread.sleep(100);
                        continue;
                    }
                    if (!recs.isEmpty()) {
                        StringBuilder sb = new StringBuilder();
                        for (ConsumerRecord<byte[], byte[]> r : recs) {
                            sb.append("mrec ").append(name).append(' ').append(r.partition()).append(' ').append(r.offset())
                                .append(' ').append(enc(r.key())).append(' ').append(enc(r.value()))
                                .append(' ').append(headers(r.headers())).append('\n');
                            pending.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                        }
                        emit(sb);
                        sync();
                    }
                    commit("poll"); // also what an earlier commit could not
                }
                commit("leave");
                // close() calls onPartitionsRevoked (nothing left to commit) and
                // sends LeaveGroup.
                c.close(CloseOptions.timeout(Duration.ofSeconds(15)));
            } catch (Exception e) {
                note(name + " run", e);
                try {
                    c.close(CloseOptions.timeout(Duration.ofSeconds(5)));
                } catch (Exception ignored) {
                    // already reported
                }
            } finally {
                members.remove(name);
                emit("left " + name);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 16);
        emit("ready");
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.split(" ");
            try {
                switch (f[0]) {
                    case "producer":
                        producers.put(f[1], new Producer(f[2], f[3], f[4], f[5], props(f, 6)));
                        emit("ok " + f[1]);
                        break;
                    case "rec":
                        producers.get(f[1]).send(f[2], dec(f[3]), dec(f[4]), headers(f[5]));
                        break;
                    case "flush":
                        producers.get(f[1]).flush(f[2], Integer.parseInt(f[3]));
                        break;
                    case "close": {
                        Producer p = producers.remove(f[1]);
                        if (p != null) {
                            new Thread(p::close, "close-" + f[1]).start();
                        }
                        break;
                    }
                    case "read": {
                        final String[] a = f;
                        new Thread(() -> read(a[1], a[2], a[3], a[4], a[5], props(a, 6)), "read-" + f[1]).start();
                        break;
                    }
                    case "member": {
                        Member m = new Member(f[1], f[2], f[3], f[4], f[5], f[6]);
                        members.put(f[1], m);
                        new Thread(m::run, "member-" + f[1]).start();
                        emit("ok " + f[1]);
                        break;
                    }
                    case "leave": {
                        Member m = members.get(f[1]);
                        if (m == null) {
                            emit("left " + f[1]);
                        } else {
                            m.leaving = true;
                            m.c.wakeup();
                        }
                        break;
                    }
                    case "synced": {
                        Member m = members.get(f[1]);
                        if (m != null) {
                            m.synced.add(Long.parseLong(f[2]));
                        }
                        break;
                    }
                    case "partitions": {
                        StringBuilder sb = new StringBuilder();
                        // Kafka 4 leaves partitioner.class unset by default:
                        // keyed records then go through BuiltInPartitioner.
                        Properties p = new Properties();
                        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, "127.0.0.1:1");
                        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
                        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
                        Object cls = new ProducerConfig(p).getClass(ProducerConfig.PARTITIONER_CLASS_CONFIG);
                        if (cls != null) {
                            throw new IllegalStateException("default partitioner.class is " + cls + ", not unset");
                        }
                        for (String count : f[2].split(",")) {
                            int n = Integer.parseInt(count);
                            sb.append("parts ").append(f[1]).append(' ').append(n).append(' ');
                            for (int i = 3; i < f.length; i++) {
                                if (i > 3) {
                                    sb.append(',');
                                }
                                sb.append(BuiltInPartitioner.partitionForKey(dec(f[i]), n));
                            }
                            sb.append('\n');
                        }
                        sb.append("done ").append(f[1]).append(' ').append(f.length - 3);
                        emit(sb);
                        break;
                    }
                    default:
                        throw new IllegalArgumentException("unknown command");
                }
            } catch (Exception e) {
                StringWriter sw = new StringWriter();
                e.printStackTrace(new PrintWriter(sw));
                // Not the whole line: its PROPS may hold a password.
                System.err.println("command " + f[0] + (f.length > 1 ? " " + f[1] : "") + ": " + sw);
                emit("failed " + (f.length > 1 ? f[1] : "-") + " " + enc(describe(e)));
            }
        }
        // stdin closed: the test is done. Leave groups and close producers.
        for (Member m : members.values()) {
            m.leaving = true;
            m.c.wakeup();
        }
        for (Producer p : producers.values()) {
            p.close();
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!members.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        emit("exit");
        System.exit(0);
    }
}
