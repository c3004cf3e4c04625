package ubridge.check;

import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

/** Reads COUNT records of TOPIC with Apicurio's AvroKafkaDeserializer; prints key, schema name and Avro JSON. */
public final class Consume {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], registry = args[2];
        int count = Integer.parseInt(args[3]);
        Map<String, Object> config = Map.of(
                "bootstrap.servers", bootstrap,
                "group.id", "ubridge-registry-check",
                "auto.offset.reset", "earliest",
                "key.deserializer", StringDeserializer.class.getName(),
                "value.deserializer", "io.apicurio.registry.serde.avro.AvroKafkaDeserializer",
                "apicurio.registry.url", registry,
                // the Confluent framing: no id headers, a 4-byte content id after the 00 magic byte
                "apicurio.registry.headers.enabled", "false",
                "apicurio.registry.as-confluent", "true",
                "apicurio.registry.use-id", "contentId");
        int seen = 0;
        long deadline = System.currentTimeMillis() + 60_000;
        try (KafkaConsumer<String, GenericRecord> consumer = new KafkaConsumer<>(config)) {
            consumer.subscribe(List.of(topic));
            while (seen < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, GenericRecord> record : consumer.poll(Duration.ofMillis(500))) {
                    GenericRecord value = record.value();
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    JsonEncoder encoder = EncoderFactory.get().jsonEncoder(value.getSchema(), out);
                    new GenericDatumWriter<GenericRecord>(value.getSchema()).write(value, encoder);
                    encoder.flush();
                    System.out.println(record.key() + "\t" + value.getSchema().getFullName() + "\t" + out);
                    seen++;
                }
            }
        }
        if (seen < count) {
            System.err.println("read " + seen + " of " + count + " records");
            System.exit(1);
        }
    }
}
