// The Java client peer of the benchmark (kafka-clients from the Apache Kafka jars): reads
// COUNT records from offset 0 of partitions 0..PARTITIONS of TOPIC, writes each value and a
// newline to stdout, prints "consumed N" to stderr. Usage: Consume BROKERS TOPIC PARTITIONS COUNT
// With BENCH_FLUSH_EACH_POLL=1 in the environment it flushes after every poll (the latency
// benchmark reads the records as they come). With BENCH_GROUP=G it joins consumer group G and
// subscribes to TOPIC (from the earliest offset, committing nothing) instead of assigning.
// With BENCH_LOW_LATENCY=1 it sets fetch.max.wait.ms=10 (the broker answers a fetch after at
// most 10 ms instead of 500 ms when no record arrives).
import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class Consume {
    public static void main(String[] args) throws Exception {
        String brokers = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        long count = Long.parseLong(args[3]);
        Properties props = new Properties();
        props.put("bootstrap.servers", brokers);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("enable.auto.commit", "false");
        props.put("max.poll.records", "10000");
        if ("1".equals(System.getenv("BENCH_LOW_LATENCY"))) {
            props.put("fetch.max.wait.ms", "10");
        }
        String group = System.getenv("BENCH_GROUP");
        if (group != null) {
            props.put("group.id", group);
            props.put("auto.offset.reset", "earliest");
        }
        List<TopicPartition> assigned = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
            assigned.add(new TopicPartition(topic, p));
        }
        boolean flushEachPoll = "1".equals(System.getenv("BENCH_FLUSH_EACH_POLL"));
        long n = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            if (group != null) {
                consumer.subscribe(List.of(topic));
            } else {
                consumer.assign(assigned);
                consumer.seekToBeginning(assigned);
            }
            BufferedOutputStream out =
                new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16);
            while (n < count) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    if (record.value() != null) {
                        out.write(record.value());
                    }
                    out.write('\n');
                    n++;
                }
                if (flushEachPoll) {
                    out.flush();
                }
            }
            out.flush();
        }
        System.err.println("consumed " + n);
    }
}
