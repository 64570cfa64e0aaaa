'use strict';
// Consumes with the official Node.js PushConsumer and prints a JSON line per event.
// The listener prints each message and returns --result: SUCCESS (the client acks) or
// FAILURE (the client nacks by changing the invisible duration, and the server
// redelivers with the next attempt). The run ends after --expect deliveries (counting
// redeliveries) and --linger seconds, or at --timeout.

const c = require('./common');

async function main() {
  const a = c.args({
    group: { type: 'string' },
    filter: { type: 'string', default: '*' },
    result: { type: 'string', default: 'success' },
    expect: { type: 'string', default: '1' },
    linger: { type: 'string', default: '1' },
  });
  const timeout = Number(a.timeout);
  c.watchdog(timeout);
  const { PushConsumer, FilterExpression, ConsumeResult } = c.loadClient();
  const result = a.result === 'failure' ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
  let seen = 0;
  let enough;
  const reached = new Promise(r => { enough = r; });

  let consumer = new PushConsumer({
    ...c.options(a),
    consumerGroup: a.group,
    subscriptions: new Map([[ a.topic, new FilterExpression(a.filter) ]]),
    messageListener: {
      consume(m) {
        c.emit('received', { result: a.result, ...c.received(m) });
        seen += 1;
        if (seen >= Number(a.expect)) enough();
        return result;
      },
    },
  });
  try {
    await c.within(consumer.startup(), timeout * 500, 'startup');
    c.emit('started', { client: 'push_consumer', result: a.result });
  } catch (e) {
    c.error('startup', e);
    await c.shutdown(consumer, 'push_consumer');
    consumer = null;
  }

  if (consumer) {
    const lingerMs = Number(a.linger) * 1000;
    try {
      await c.within(reached, Math.max(0, timeout * 1000 - lingerMs - 7000), 'deliveries');
      await new Promise(r => setTimeout(r, lingerMs));
    } catch {
      c.emit('incomplete', { deliveries: seen, expected: Number(a.expect) });
    }
  }
  // This client's shutdown first waits for its receive calls in flight, each a long
  // poll of up to the server's long_polling_timeout (20 s by default), then 1 s more.
  await c.shutdown(consumer, 'push_consumer', 25000);
  c.finish();
}

main().catch(e => { c.error('main', e); c.finish(); });
