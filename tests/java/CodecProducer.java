// Writes one partition per codec with the Java client (kafka-clients), for a Rust test.
//
// Usage: java -cp 'KAFKA_LIB/*' CodecProducer.java BOOTSTRAP TOPIC COUNT
//
// Partition 0 gets gzip batches, 1 snappy, 2 lz4, 3 zstd: COUNT records each, with key
// "k<P>-<N>", value "<codec>-<N>-" followed by N % 100 times "x", and a header "n" = N.
// Records linger so that batches hold many of them. Prints {"event": "done"} at the end.

import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

public class CodecProducer {
    static final String[] CODECS = {"gzip", "snappy", "lz4", "zstd"};

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        for (int partition = 0; partition < CODECS.length; partition++) {
            String codec = CODECS[partition];
            Properties props = new Properties();
            props.put("bootstrap.servers", bootstrap);
            props.put("compression.type", codec);
            props.put("linger.ms", "50");
            props.put("key.serializer", StringSerializer.class.getName());
            props.put("value.serializer", StringSerializer.class.getName());
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
                for (int n = 0; n < count; n++) {
                    ProducerRecord<String, String> record = new ProducerRecord<>(
                            topic, partition, "k" + partition + "-" + n,
                            codec + "-" + n + "-" + "x".repeat(n % 100));
                    record.headers().add("n", Integer.toString(n).getBytes(StandardCharsets.UTF_8));
                    producer.send(record);
                }
                producer.flush();
            }
        }
        System.out.println("{\"event\": \"done\"}");
    }
}
