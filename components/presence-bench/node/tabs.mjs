// What a full-list subscriber receives while one tab of a user with several tabs changes its
// state: the bytes on the wire and the JSON they inflate to, per change. Run it against two
// builds of the bench server in one go to compare them (each starts its own server in turn):
//
//   node tabs.mjs --bin ../../../target/release/presence-bench [--bin /tmp/old-presence-bench]
//                 [--tabs 1,3,10] [--state-bytes 200] [--updates 200] [--deflate on|off] [--port 3610]
//
// For each build and each tab count T: user `ada` joins room `tabs-T` with T tabs, each with a
// state of about --state-bytes bytes; a watcher (another user) subscribes to the full list; then
// tab 1 changes its state --updates times, each time waiting for the watcher's diff. Prints one
// line per build and tab count.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { postJson } from './post-json.mjs';
import { waitForPort } from './wait-for-port.mjs';
import WebSocket from 'ws';

const argv = process.argv.slice(2);
const all = (name) => argv.flatMap((a, i) => (a === `--${name}` ? [argv[i + 1]] : []));
const one = (name, fallback) => all(name).at(-1) ?? fallback;
const bins = all('bin');
if (bins.length === 0) throw new Error('--bin PATH (once per build to compare)');
const tabCounts = one('tabs', '1,3,10').split(',').map(Number);
const stateBytes = Number(one('state-bytes', 200));
const updates = Number(one('updates', 200));
const deflate = one('deflate', 'on');
if (!['on', 'off'].includes(deflate)) throw new Error(`--deflate on|off, not ${deflate}`);
const port = Number(one('port', 3610));
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

const post = (name, body) => postJson(agent, port, name, body);


// A tab's state: a cursor that moves, and a note of about `stateBytes` bytes that does not.
const state = (tab, n) => ({ cursor: { x: n, y: 2 * n }, note: `tab ${tab} `.padEnd(stateBytes, '.') });

async function measure(bin, tabs) {
  const room = `tabs-${tabs}`;
  const tokens = [];
  for (let t = 1; t <= tabs; t++) {
    const answer = await post('heartbeat', { room, user: 'ada', session: `ada-tab-${t}`, name: 'Ada', interval_ms: 60_000, state: state(t, 0) });
    tokens.push(answer.session_token);
  }
  const watcher = await post('heartbeat', { room, user: 'watcher', session: 'watcher-tab', name: 'Watcher', interval_ms: 60_000 });
  const ws = new WebSocket(
    `ws://127.0.0.1:${port}/api/presence/subscribe?room_token=${encodeURIComponent(watcher.room_token)}&view=full`,
    { perMessageDeflate: deflate === 'on' },
  );
  let waiting = null;
  let json = 0;
  ws.on('message', (data) => {
    json += data.length;
    const message = JSON.parse(data);
    if (message.type !== 'updated') return;
    if (message.session_id !== 'ada-tab-1') throw new Error(`unexpected ${data}`);
    waiting?.();
  });
  await new Promise((resolve, reject) => (ws.once('message', resolve), ws.once('error', reject)));
  const [wireStart, jsonStart] = [ws._socket.bytesRead, json];
  for (let n = 1; n <= updates; n++) {
    const seen = new Promise((resolve) => (waiting = resolve));
    await post('update', { session_token: tokens[0], state: state(1, n) });
    await seen;
  }
  const wire = ws._socket.bytesRead - wireStart;
  const inflated = json - jsonStart;
  ws.close();
  console.log(
    `tabs bin=${bin} tabs=${tabs} state_bytes=${stateBytes} deflate=${deflate} updates=${updates} ` +
      `wire_bytes=${wire} wire_per_update=${(wire / updates).toFixed(1)} json_per_update=${(inflated / updates).toFixed(1)}`,
  );
}

for (const bin of bins) {
  const child = spawn(bin, ['serve', '--port', String(port)], {
    env: { ...process.env, PRESENCE_SESSION_RATE: '0', PRESENCE_ADDRESS_RATE: '0' },
    stdio: 'ignore',
  });
  try {
    await waitForPort(port);
    for (const tabs of tabCounts) await measure(bin, tabs);
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
}
agent.destroy();
