'use strict';
// Sends messages with the official Node.js Producer and prints a JSON line per event.
//
// --mode delay           a DELAY message: tag, keys, a user property, deliveryTimestamp
//                        now + --delay-ms (a Date, millisecond precision)
// --mode normal          a NORMAL message; to a DELAY topic the client refuses it itself
// --mode ms-as-seconds   the Python pitfall reproduced on the wire: a Date at
//                        (now + delay in ms) seconds, i.e. 1000 times too far; the server
//                        must refuse it (ILLEGAL_DELIVERY_TIME)
// --mode recall          a DELAY message, then recallMessage with the receipt's handle

const c = require('./common');

async function main() {
  const a = c.args({
    mode: { type: 'string', default: 'delay' },
    body: { type: 'string', default: 'hello from node' },
    tag: { type: 'string', default: 'TagA' },
    keys: { type: 'string', default: '' },
    property: { type: 'string', multiple: true, default: [] },
    'delay-ms': { type: 'string', default: '5000' },
    count: { type: 'string', default: '1' },
  });
  const timeout = Number(a.timeout);
  c.watchdog(timeout);
  const { Producer } = c.loadClient();

  let producer = new Producer({ ...c.options(a), topics: [ a.topic ] });
  try {
    await c.within(producer.startup(), timeout * 500, 'startup');
    c.emit('started', { client: 'producer', mode: a.mode });
  } catch (e) {
    c.error('startup', e);
    await c.shutdown(producer, 'producer');
    producer = null;
  }

  for (let i = 0; producer && i < Number(a.count); i++) {
    const properties = new Map(a.property.map(p => {
      const at = p.indexOf('=');
      return [ p.slice(0, at), p.slice(at + 1) ];
    }));
    const message = {
      topic: a.topic,
      body: Buffer.from(a.body),
      tag: a.tag || undefined,
      keys: a.keys.split(',').filter(Boolean),
      properties,
    };
    let deliverAtMs = null;
    if (a.mode === 'delay' || a.mode === 'recall') {
      deliverAtMs = Date.now() + Number(a['delay-ms']);
      message.deliveryTimestamp = new Date(deliverAtMs);
    } else if (a.mode === 'ms-as-seconds') {
      deliverAtMs = (Date.now() + Number(a['delay-ms'])) * 1000;
      message.deliveryTimestamp = new Date(deliverAtMs);
    }
    let receipt;
    try {
      receipt = await c.within(producer.send(message), timeout * 500, 'send');
      c.emit('sent', {
        index: i, message_id: receipt.messageId, offset: receipt.offset,
        recall_handle: receipt.recallHandle, deliver_at_ms: deliverAtMs, send_time_ms: Date.now(),
      });
    } catch (e) {
      c.error('send', e);
      continue;
    }
    if (a.mode === 'recall') {
      try {
        const recalled = await c.within(producer.recallMessage(a.topic, receipt.recallHandle), timeout * 500, 'recall');
        c.emit('recalled', { message_id: recalled.messageId });
      } catch (e) {
        c.error('recall', e);
      }
    }
  }
  await c.shutdown(producer, 'producer');
  c.finish();
}

main().catch(e => { c.error('main', e); c.finish(); });
