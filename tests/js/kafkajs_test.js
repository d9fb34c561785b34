// kafkajs against a tern broker: admin createTopics, an idempotent producer (acks all), and a
// group consumer that reads every message back in order per partition. Driven by
// tests/integration/kafka/test_kafkajs.py. With TERN_KAFKA_SASL_USER/_PASS set it authenticates
// with SASL PLAIN first. Prints "ok: N messages" and exits 0, or prints "FAIL: ..." on stderr
// and exits 1.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const broker = process.env.TERN_KAFKA_BROKER;
const topic = process.env.TERN_KAFKA_TOPIC;
const N = 200;
const timeoutMs = Number(process.env.TERN_KAFKAJS_TIMEOUT_MS || 30000);

async function main() {
  const user = process.env.TERN_KAFKA_SASL_USER;
  const sasl = user ? { mechanism: 'plain', username: user,
                        password: process.env.TERN_KAFKA_SASL_PASS || '' } : undefined;
  const kafka = new Kafka({ clientId: 'tern-kafkajs-test', brokers: [broker], sasl,
                            logLevel: logLevel.NOTHING, retry: { retries: 3 } });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
  if (!created) throw new Error('createTopics returned false (topic existed?)');
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  if (meta.topics[0].partitions.length !== 2) throw new Error('expected 2 partitions');
  await admin.disconnect();

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let i = 0; i < N; i += 20) {
    const messages = [];
    for (let k = i; k < i + 20; k++)
      messages.push({ key: String(k % 5), value: `m${k}`, partition: k % 2 });
    await producer.send({ topic, acks: -1, messages });
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `${topic}-g`, sessionTimeout: 10000,
                                    heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = { 0: [], 1: [] };
  let count = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout after ${count} messages`)),
                             timeoutMs);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen[partition].push(Number(message.value.toString().slice(1)));
        if (++count === N) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  for (const p of [0, 1]) {
    const want = [];
    for (let k = p; k < N; k += 2) want.push(k);
    if (JSON.stringify(seen[p]) !== JSON.stringify(want))
      throw new Error(`partition ${p}: got ${seen[p].slice(0, 10)}...`);
  }
  console.log(`ok: ${count} messages`);
}

main().then(() => process.exit(0), (err) => {
  console.error(`FAIL: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
