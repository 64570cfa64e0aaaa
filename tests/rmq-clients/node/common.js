'use strict';
// What the RocketMQ 5 Node.js client programs share: one JSON line per event on stdout,
// a watchdog that ends the process at its deadline whatever the client is doing, the
// client options from the command line, and a logger that keeps the client's own lines
// on stderr.

const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

// The client is installed by scripts/rocketmq-clients.sh; NODE_PATH may point at it,
// otherwise its default place is used.
function loadClient() {
  try {
    return require('rocketmq-client-nodejs');
  } catch {
    const root = process.env.SUNDIAL_RMQ_CLIENTS || path.join(os.homedir(), '.cache', 'sundial');
    return require(path.join(root, 'rmq-node', 'node_modules', 'rocketmq-client-nodejs'));
  }
}

let errors = 0;

function emit(event, fields = {}) {
  const obj = { event, ...fields };
  const sorted = Object.fromEntries(Object.keys(obj).sort().map(k => [ k, obj[k] ]));
  process.stdout.write(JSON.stringify(sorted) + '\n');
}

function error(stage, err) {
  errors += 1;
  const cls = err && err.constructor ? err.constructor.name : typeof err;
  emit('error', { stage, class: cls, message: err && err.message !== undefined ? String(err.message) : String(err) });
}

const COMMON = {
  endpoint: { type: 'string' },
  topic: { type: 'string' },
  timeout: { type: 'string', default: '60' },
  'request-timeout': { type: 'string', default: '3' },
  'access-key': { type: 'string', default: '' },
  'secret-key': { type: 'string', default: '' },
  namespace: { type: 'string', default: '' },
  verbose: { type: 'boolean', default: false },
};

function args(extra) {
  const { values } = parseArgs({ options: { ...COMMON, ...extra }, strict: true });
  for (const required of [ 'endpoint', 'topic' ]) {
    if (!values[required]) {
      process.stderr.write(`--${required} is required\n`);
      process.exit(2);
    }
  }
  return values;
}

// The client's log lines go to stderr with --verbose, and nowhere otherwise.
function logger(verbose) {
  const line = level => (...a) => {
    if (verbose) process.stderr.write(`[${level}] ${a.map(String).join(' ')}\n`);
  };
  return { info: line('info'), warn: line('warn'), error: line('error'), debug: line('debug'), close() {} };
}

// The options every client takes (the client's times are milliseconds).
function options(a) {
  const o = {
    endpoints: a.endpoint,
    namespace: a.namespace,
    requestTimeout: Math.max(1000, Number(a['request-timeout']) * 1000),
    logger: logger(a.verbose),
  };
  if (a['access-key']) {
    o.sessionCredentials = { accessKey: a['access-key'], accessSecret: a['secret-key'] };
  }
  return o;
}

// Ends the process with status 3 after `seconds`, even if the client hangs.
function watchdog(seconds) {
  const t = setTimeout(() => {
    emit('timeout', { after_s: seconds });
    process.exit(3);
  }, seconds * 1000);
  t.unref();
}

// Bounds one promise in time, so that no single call outlives the run.
function within(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([ promise, limit ]).finally(() => clearTimeout(timer));
}

async function shutdown(client, name, ms = 5000) {
  if (!client) return;
  try {
    await within(client.shutdown(), ms, 'shutdown');
    emit('shutdown', { client: name });
  } catch (e) {
    error('shutdown', e);
  }
}

function finish() {
  emit('done', { errors });
  // The client's timers and streams may still hold the loop; the run is over.
  process.exit(errors === 0 ? 0 : 1);
}

function received(m) {
  const props = {};
  for (const [ k, v ] of m.properties || []) props[k] = v;
  return {
    message_id: m.messageId,
    topic: m.topic,
    body: m.body ? m.body.toString('utf8') : null,
    tag: m.tag ?? null,
    keys: [ ...(m.keys || []) ].sort(),
    properties: props,
    delivery_attempt: m.deliveryAttempt ?? null,
    delivery_timestamp_ms: m.deliveryTimestamp ? m.deliveryTimestamp.getTime() : null,
    born_timestamp_ms: m.bornTimestamp ? m.bornTimestamp.getTime() : null,
    receive_time_ms: Date.now(),
    // The client sets it only when the digest does not match.
    corrupted: m.corrupted === true,
  };
}

module.exports = { loadClient, emit, error, args, options, watchdog, within, shutdown, finish, received };
