// The Java client peer of `wasmkafka-bench group-scale` (kafka-clients from the Apache Kafka
// jars): the members of one consumer group as threads of one JVM, each with its own
// KafkaConsumer subscribed to TOPIC. Usage: GroupScale BROKERS TOPIC GROUP PROTOCOL, where
// PROTOCOL is "eager" (the classic protocol with RangeAssignor), "classic"
// (CooperativeStickyAssignor) or "consumer" (KIP-848: the broker assigns with its default
// assignor). Everything else is the client's defaults, apart from
// auto.offset.reset=latest (the topic is fed all along; a fresh group starts at its end).
//
// Commands on stdin, one a line:
//   start N   starts members 0..N-1 (a thread each; they construct their consumers at once)
//   join      starts one more member (the next index)
//   leave K   member K closes its consumer (leaving the group: LeaveGroup, or a heartbeat
//             leaving under the consumer protocol) and its thread ends
//   stop      closes every consumer (leaving the group) and exits; so does the end of input
// Every record goes to stdout as "MEMBER VALUE\n" (the value as produced; the harness reads
// the partition from it), flushed after each poll that returned records.
import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class GroupScale {
    static final BufferedOutputStream OUT =
        new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16);
    static final AtomicBoolean STOP = new AtomicBoolean(false);

    static Properties properties(String brokers, String group, String protocol) {
        Properties props = new Properties();
        props.put("bootstrap.servers", brokers);
        props.put("group.id", group);
        props.put("group.protocol", protocol.equals("consumer") ? "consumer" : "classic");
        props.put("auto.offset.reset", "latest");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        if (protocol.equals("classic")) {
            props.put("partition.assignment.strategy", CooperativeStickyAssignor.class.getName());
        } else if (protocol.equals("eager")) {
            props.put("partition.assignment.strategy", RangeAssignor.class.getName());
        } else if (!protocol.equals("consumer")) {
            throw new IllegalArgumentException(
                "PROTOCOL is eager, classic or consumer, not " + protocol);
        }
        return props;
    }

    static void write(int member, ConsumerRecords<byte[], byte[]> records) throws IOException {
        byte[] prefix = (member + " ").getBytes(StandardCharsets.US_ASCII);
        synchronized (OUT) {
            for (ConsumerRecord<byte[], byte[]> record : records) {
                OUT.write(prefix);
                if (record.value() != null) {
                    OUT.write(record.value());
                }
                OUT.write('\n');
            }
            OUT.flush();
        }
    }

    public static void main(String[] args) throws Exception {
        String brokers = args[0], topic = args[1], group = args[2], protocol = args[3];
        List<Thread> threads = new ArrayList<>();
        Map<Integer, KafkaConsumer<byte[], byte[]>> consumers = new ConcurrentHashMap<>();
        Map<Integer, AtomicBoolean> leaving = new ConcurrentHashMap<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            int count;
            if (line.startsWith("start ")) {
                count = Integer.parseInt(line.substring(6).trim());
            } else if (line.equals("join")) {
                count = 1;
            } else if (line.startsWith("leave ")) {
                int member = Integer.parseInt(line.substring(6).trim());
                AtomicBoolean flag = leaving.get(member);
                if (flag != null) {
                    flag.set(true);
                    KafkaConsumer<byte[], byte[]> consumer = consumers.get(member);
                    if (consumer != null) {
                        consumer.wakeup();
                    }
                }
                continue;
            } else if (line.equals("stop")) {
                break;
            } else {
                System.err.println("unknown command: " + line);
                continue;
            }
            for (int i = 0; i < count; i++) {
                int member = threads.size();
                AtomicBoolean leave = new AtomicBoolean(false);
                leaving.put(member, leave);
                Thread thread = new Thread(() -> {
                    KafkaConsumer<byte[], byte[]> consumer =
                        new KafkaConsumer<>(properties(brokers, group, protocol));
                    consumers.put(member, consumer);
                    try {
                        consumer.subscribe(List.of(topic));
                        while (!STOP.get() && !leave.get()) {
                            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(500));
                            if (!records.isEmpty()) {
                                write(member, records);
                            }
                        }
                    } catch (WakeupException stopping) {
                        // stop
                    } catch (Exception error) {
                        System.err.println("member " + member + " failed: " + error);
                    } finally {
                        consumer.close();
                        System.err.println("member " + member + " closed its consumer");
                    }
                }, "member-" + member);
                threads.add(thread);
                thread.start();
            }
        }
        STOP.set(true);
        for (KafkaConsumer<byte[], byte[]> consumer : consumers.values()) {
            consumer.wakeup();
        }
        for (Thread thread : threads) {
            thread.join(10_000);
        }
        System.exit(0);
    }
}
