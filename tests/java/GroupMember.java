// A Java client (org.apache.kafka:kafka-clients, the classic group protocol) as a member of a
// consumer group, for the interop tests. Run with the source launcher on the Kafka classpath:
//   java -cp '<kafka lib>/*' tests/java/GroupMember.java BOOTSTRAP GROUP TOPIC ASSIGNOR
//        [PROTOCOL [PROPERTIES_FILE]]
// ASSIGNOR lists assignors in preference order, comma-separated: range, roundrobin, sticky,
// cooperative-sticky (e.g. "cooperative-sticky,range"). Prints JSON lines on stdout:
//   {"event":"assigned","partitions":[0,1]}   {"event":"revoked","partitions":[2]}
//   {"event":"record","partition":0,"offset":5}
//   {"event":"committed","partitions":{"0":6}}  (what committed() reads back, on "committed")
//   {"event":"closed"}
// Commits synchronously after each poll's records are printed and before partitions are
// revoked. Reads commands on stdin: "committed" prints the committed offsets of the assigned
// partitions; "stop" (or end of input) closes the consumer (leaving the group) and exits.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class GroupMember {
    static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static String partitions(Collection<TopicPartition> parts) {
        StringJoiner joined = new StringJoiner(",", "[", "]");
        parts.stream().map(TopicPartition::partition).sorted().forEach(p -> joined.add(p.toString()));
        return joined.toString();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], topic = args[2], assignor = args[3];
        // "classic" (the default) or "consumer" (KIP-848: the broker assigns; ASSIGNOR is then
        // not sent, the broker's own assignor decides).
        String protocol = args.length > 4 ? args[4] : "classic";
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (protocol.equals("classic")) {
            // The consumer protocol takes these from the broker.
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "300");
        }
        // A list in preference order, by the names every client knows (Kafka's upgrade to
        // cooperative lists two: "cooperative-sticky,range").
        StringJoiner classes = new StringJoiner(",");
        for (String name : assignor.split(",")) {
            switch (name.trim()) {
                case "range" -> classes.add(RangeAssignor.class.getName());
                case "roundrobin" -> classes.add(RoundRobinAssignor.class.getName());
                case "sticky" -> classes.add(StickyAssignor.class.getName());
                case "cooperative-sticky" -> classes.add(CooperativeStickyAssignor.class.getName());
                default -> throw new IllegalArgumentException("unknown assignor " + name);
            }
        }
        if (protocol.equals("classic")) {
            props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, classes.toString());
        }
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        // A properties file (the sixth argument) goes over all of the above, as a Java
        // application's client.properties would.
        if (args.length > 5) {
            try (var file = new java.io.FileInputStream(args[5])) {
                props.load(file);
            }
        }

        ConcurrentLinkedQueue<String> commands = new ConcurrentLinkedQueue<>();
        AtomicBoolean inputClosed = new AtomicBoolean(false);
        Thread reader = new Thread(() -> {
            Scanner in = new Scanner(System.in);
            while (in.hasNextLine()) commands.add(in.nextLine().trim());
            inputClosed.set(true);
        });
        reader.setDaemon(true);
        reader.start();

        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
                    if (!revoked.isEmpty()) consumer.commitSync();
                    emit("{\"event\":\"revoked\",\"partitions\":" + partitions(revoked) + "}");
                }
                public void onPartitionsAssigned(Collection<TopicPartition> assigned) {
                    emit("{\"event\":\"assigned\",\"partitions\":" + partitions(assigned) + "}");
                }
                public void onPartitionsLost(Collection<TopicPartition> lost) {
                    emit("{\"event\":\"lost\",\"partitions\":" + partitions(lost) + "}");
                }
            });
            boolean running = true;
            while (running) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
                for (ConsumerRecord<byte[], byte[]> record : records) {
                    emit("{\"event\":\"record\",\"partition\":" + record.partition()
                            + ",\"offset\":" + record.offset() + "}");
                }
                if (!records.isEmpty()) consumer.commitSync();
                String command;
                while ((command = commands.poll()) != null) {
                    if (command.equals("stop")) running = false;
                    if (command.equals("committed")) {
                        Map<TopicPartition, OffsetAndMetadata> committed =
                                consumer.committed(consumer.assignment());
                        StringJoiner joined = new StringJoiner(",", "{", "}");
                        committed.forEach((tp, offset) -> joined.add(
                                "\"" + tp.partition() + "\":" + (offset == null ? -1 : offset.offset())));
                        emit("{\"event\":\"committed\",\"partitions\":" + joined + "}");
                    }
                }
                if (inputClosed.get() && commands.isEmpty()) running = false;
            }
        }
        emit("{\"event\":\"closed\"}");
    }
}
