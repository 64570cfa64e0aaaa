'use strict';
// Receives with the official Node.js SimpleConsumer and prints a JSON line per event.
//
// --mode ack               receive --expect messages and ack each
// --mode redeliver         receive one, do not ack, receive until it comes again
//                          (delivery attempt 2), then ack that delivery
// --mode change-invisible  receive one, changeInvisibleDuration (the client stores the
//                          new receipt handle in the message), wait --ack-delay-seconds,
//                          then ack with it
//
// The client's times are milliseconds; the options here are seconds, as in Python.

const c = require('./common');

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function main() {
  const a = c.args({
    group: { type: 'string' },
    mode: { type: 'string', default: 'ack' },
    filter: { type: 'string', default: '*' },
    expect: { type: 'string', default: '1' },
    batch: { type: 'string', default: '16' },
    'invisible-seconds': { type: 'string', default: '10' },
    'new-invisible-seconds': { type: 'string', default: '20' },
    'ack-delay-seconds': { type: 'string', default: '0' },
    'await-seconds': { type: 'string', default: '5' },
    'max-errors': { type: 'string', default: '3' },
  });
  const timeout = Number(a.timeout);
  c.watchdog(timeout);
  const { SimpleConsumer, FilterExpression } = c.loadClient();
  const awaitMs = Number(a['await-seconds']) * 1000;
  const reqMs = Math.max(1000, Number(a['request-timeout']) * 1000);
  const stopAt = Date.now() + timeout * 1000 - awaitMs - reqMs - 2000;
  let failures = 0;
  const running = () => Date.now() < stopAt && failures < Number(a['max-errors']);

  let consumer = new SimpleConsumer({
    ...c.options(a),
    consumerGroup: a.group,
    subscriptions: new Map([[ a.topic, new FilterExpression(a.filter) ]]),
    awaitDuration: awaitMs,
  });
  try {
    // Without a settings reply this client waits forever; bounded here.
    await c.within(consumer.startup(), timeout * 500, 'startup');
    c.emit('started', { client: 'simple_consumer', mode: a.mode });
  } catch (e) {
    c.error('startup', e);
    await c.shutdown(consumer, 'simple_consumer');
    consumer = null;
  }

  const receive = async () => {
    try {
      const msgs = await c.within(
        consumer.receive(Number(a.batch), Number(a['invisible-seconds']) * 1000),
        awaitMs + reqMs + 2000, 'receive');
      for (const m of msgs) c.emit('received', c.received(m));
      return msgs;
    } catch (e) {
      c.error('receive', e);
      failures += 1;
      await sleep(1000);
      return [];
    }
  };
  const ack = async m => {
    try {
      await c.within(consumer.ack(m), reqMs + 2000, 'ack');
      c.emit('acked', { message_id: m.messageId });
    } catch (e) {
      c.error('ack', e);
    }
  };

  if (consumer) {
    if (a.mode === 'ack') {
      let got = 0;
      while (got < Number(a.expect) && running()) {
        for (const m of await receive()) {
          got += 1;
          await ack(m);
        }
      }
    } else {
      let first = null;
      while (!first && running()) first = (await receive())[0] || null;
      if (first && a.mode === 'redeliver') {
        let again = null;
        while (!again && running()) {
          again = (await receive()).find(m => m.messageId === first.messageId) || null;
        }
        if (again) await ack(again);
      } else if (first) {
        try {
          const seconds = Number(a['new-invisible-seconds']);
          const changeTimeMs = Date.now();
          await c.within(consumer.changeInvisibleDuration(first, seconds * 1000), reqMs + 2000,
            'changeInvisibleDuration');
          c.emit('changed', { message_id: first.messageId, invisible_seconds: seconds, change_time_ms: changeTimeMs });
          await sleep(Number(a['ack-delay-seconds']) * 1000);
          await ack(first);
        } catch (e) {
          c.error('change_invisible_duration', e);
        }
      }
    }
  }
  await c.shutdown(consumer, 'simple_consumer');
  c.finish();
}

main().catch(e => { c.error('main', e); c.finish(); });
