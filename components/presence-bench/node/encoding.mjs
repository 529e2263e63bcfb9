// Would a more compact encoding than JSON pay, once frames are compressed? A full-list watcher
// records the `joined` diffs of --clients users joining one room (the bench server's real
// frames), then the same diffs are sized four ways, each plain and through one deflate stream
// per socket as permessage-deflate sends them (context kept between messages, each flushed):
// the JSON as sent, the JSON with one- or two-letter keys, and a schema-based binary encoding
// (lib0's varints and strings, as Yjs encodes its awareness updates).
//
//   node encoding.mjs [--bin ../../../target/release/presence-bench] [--clients 1000] [--port 3620]
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import * as encoding from 'lib0/encoding';
import { postJson } from './post-json.mjs';
import { waitForPort } from './wait-for-port.mjs';

const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const here = path.dirname(fileURLToPath(import.meta.url));
const bin = arg('bin', path.join(here, '..', '..', '..', 'target', 'release', 'presence-bench'));
const clients = Number(arg('clients', 1000));
const port = Number(arg('port', 3620));
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const post = (name, body) => postJson(agent, port, name, body);

// One- or two-letter keys for every key a diff has.
const SHORT = {
  type: 't', seq: 'q', session_id: 'si', user: 'u', session: 's', user_id: 'i', name: 'n', kind: 'k',
  online: 'o', away: 'a', idle: 'd', online_since: 'os', last_seen: 'l', status: 'st', idle_since: 'is',
  state: 'v', joined_at: 'ja', joined_seq: 'js', reason: 'r',
};
const shorten = (value) =>
  Array.isArray(value)
    ? value.map(shorten)
    : value && typeof value === 'object'
      ? Object.fromEntries(Object.entries(value).map(([k, v]) => [SHORT[k] ?? k, shorten(v)]))
      : value;

// A `joined` diff in a fixed schema: what a binary protocol made for this message would send.
const STATUS = { active: 0, away: 1, idle: 2 };
function binary(diff) {
  const e = encoding.createEncoder();
  const { user, session } = diff;
  encoding.writeUint8(e, 1); // joined
  encoding.writeVarUint(e, diff.seq);
  encoding.writeVarString(e, user.user_id);
  encoding.writeVarString(e, user.name);
  encoding.writeUint8(e, (user.online ? 1 : 0) | (user.away ? 2 : 0) | (user.idle ? 4 : 0) | (user.kind === 'agent' ? 8 : 0) | (user.last_seen != null ? 16 : 0));
  encoding.writeVarUint(e, user.online_since);
  if (user.last_seen != null) encoding.writeVarUint(e, user.last_seen);
  encoding.writeVarString(e, session.session_id);
  encoding.writeVarString(e, session.name);
  encoding.writeUint8(e, STATUS[session.status] ?? 0);
  encoding.writeVarUint(e, session.joined_at);
  encoding.writeVarUint(e, session.joined_seq);
  encoding.writeVarString(e, session.state === undefined ? '' : JSON.stringify(session.state));
  return Buffer.from(encoding.toUint8Array(e));
}

// Bytes of `messages` sent plain, and through one deflate stream as permessage-deflate does.
async function sizes(messages) {
  const plain = messages.reduce((sum, m) => sum + m.length, 0);
  const deflate = zlib.createDeflateRaw();
  let compressed = 0;
  for (const m of messages) {
    const out = await new Promise((resolve) => {
      const chunks = [];
      const onData = (c) => chunks.push(c);
      deflate.on('data', onData);
      deflate.write(m);
      deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        deflate.off('data', onData);
        resolve(Buffer.concat(chunks));
      });
    });
    compressed += out.length - 4; // the flush's empty block (00 00 ff ff) is not sent
  }
  deflate.close();
  return { plain, compressed };
}

const child = spawn(bin, ['serve', '--port', String(port)], {
  env: { ...process.env, PRESENCE_SESSION_RATE: '0', PRESENCE_ADDRESS_RATE: '0' },
  stdio: 'ignore',
});
try {
  await waitForPort(port);
  const watcher = await post('heartbeat', { room: 'enc', user: 'watcher', session: 'watcher-tab', name: 'Watcher', interval_ms: 300_000 });
  const ws = new WebSocket(
    `ws://127.0.0.1:${port}/api/presence/subscribe?room_token=${encodeURIComponent(watcher.room_token)}&view=full`,
    { perMessageDeflate: false },
  );
  const diffs = [];
  let done;
  const all = new Promise((resolve) => (done = resolve));
  ws.on('message', (data) => {
    const text = data.toString();
    if (JSON.parse(text).type === 'joined') diffs.push(text);
    if (diffs.length === clients) done();
  });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  for (let i = 0; i < clients; i++) {
    await post('heartbeat', { room: 'enc', user: `user-${i}`, session: `session-${i}`, name: `User ${i}`, interval_ms: 300_000 });
  }
  await all;
  ws.close();
  const parsed = diffs.map((d) => JSON.parse(d));
  const ways = {
    json: diffs.map((d) => Buffer.from(d)),
    json_short_keys: parsed.map((d) => Buffer.from(JSON.stringify(shorten(d)))),
    binary: parsed.map(binary),
  };
  for (const [way, messages] of Object.entries(ways)) {
    const { plain, compressed } = await sizes(messages);
    console.log(
      `encoding way=${way} joined_diffs=${messages.length} plain_bytes=${plain} plain_per_diff=${(plain / messages.length).toFixed(1)} ` +
        `deflated_bytes=${compressed} deflated_per_diff=${(compressed / messages.length).toFixed(1)}`,
    );
  }
} finally {
  child.kill('SIGKILL');
  agent.destroy();
}
