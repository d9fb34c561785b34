// The npm client amqplib against a broker: publish 100 messages on a confirm channel, wait for
// every confirm, consume them with manual acks and check each arrives exactly once, intact.
//
// Run by tests/integration/amqp/test_clients.py:  TERN_AMQP_URL=amqp://... node amqplib_test.js
// Exit code 0 when everything held; 1 (and a "FAIL: ..." line on stderr) otherwise; 2 when the
// whole run takes longer than TERN_AMQPLIB_TIMEOUT_MS (default 20000).
'use strict';

const amqp = require('amqplib');
const crypto = require('crypto');

const N = 100;
const URL = process.env.TERN_AMQP_URL;
const TIMEOUT_MS = Number(process.env.TERN_AMQPLIB_TIMEOUT_MS || 20000);

function check(cond, what) {
  if (!cond) throw new Error(what);
}

// Publishes N messages and waits for the broker's confirms; every per-message callback must
// report success.
async function publishAll(ch, queue) {
  let confirmed = 0;
  const nacked = [];
  for (let i = 0; i < N; i++) {
    const body = Buffer.from(`message ${i} ` + 'x'.repeat(i * 10));
    const props = {messageId: String(i), persistent: i % 2 === 0, contentType: 'text/plain',
                   headers: {index: i}};
    ch.sendToQueue(queue, body, props, (err) => {
      if (err) nacked.push(i);
      else confirmed++;
    });
  }
  await ch.waitForConfirms();
  check(nacked.length === 0, `messages nacked by the broker: ${nacked}`);
  check(confirmed === N, `${confirmed} of ${N} publishes confirmed`);
}

// Consumes until all N messages arrived, acking each; fails on a duplicate, a redelivery or a
// body that does not match its messageId.
function consumeAll(ch, queue) {
  const seen = new Set();
  return new Promise((resolve, reject) => {
    const onMessage = (msg) => {
      try {
        check(msg !== null, 'consumer cancelled by the broker');
        const i = Number(msg.properties.messageId);
        check(!seen.has(i), `message ${i} delivered twice`);
        check(!msg.fields.redelivered, `message ${i} flagged redelivered`);
        const want = `message ${i} ` + 'x'.repeat(i * 10);
        check(msg.content.toString() === want, `message ${i} body differs`);
        check(msg.properties.headers.index === i, `message ${i} header differs`);
        check(msg.properties.deliveryMode === (i % 2 === 0 ? 2 : 1),
              `message ${i} deliveryMode ${msg.properties.deliveryMode}`);
        seen.add(i);
        ch.ack(msg);
        if (seen.size === N) resolve(seen);
      } catch (err) {
        reject(err);
      }
    };
    ch.consume(queue, onMessage, {noAck: false}).catch(reject);
  });
}

async function main() {
  check(URL, 'TERN_AMQP_URL is not set');
  const conn = await amqp.connect(URL);
  let connError = null;
  conn.on('error', (err) => { connError = err; });
  try {
    const pub = await conn.createConfirmChannel();
    const queue = `amqplib-${crypto.randomUUID()}`;
    const ok = await pub.assertQueue(queue, {durable: false, exclusive: true});
    check(ok.queue === queue && ok.messageCount === 0,
          `assertQueue answered ${JSON.stringify(ok)}`);

    await publishAll(pub, queue);
    const full = await pub.checkQueue(queue);
    check(full.messageCount === N, `queue holds ${full.messageCount} after publishing ${N}`);

    const sub = await conn.createChannel();
    await sub.prefetch(10);
    await consumeAll(sub, queue);
    await sub.close();  // the acks go out before channel.close, so they are settled now

    const empty = await pub.checkQueue(queue);
    check(empty.messageCount === 0 && empty.consumerCount === 0,
          `queue after consuming: ${JSON.stringify(empty)}`);
    await pub.deleteQueue(queue);
    await pub.close();
  } finally {
    await conn.close().catch(() => {});
  }
  check(connError === null, `connection error: ${connError}`);
  console.log(`ok: ${N} messages confirmed, consumed once each and acked`);
}

setTimeout(() => {
  console.error(`FAIL: timed out after ${TIMEOUT_MS} ms`);
  process.exit(2);
}, TIMEOUT_MS).unref();

main().then(() => process.exit(0), (err) => {
  console.error(`FAIL: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
