// Side by side: the Yjs awareness server (@y/websocket-server) and leptos-presence, each with N
// clients in one room, measured the same way:
//   server CPU seconds  = utime + stime of the server process (/proc/<pid>/stat), per window;
//   bytes sent by server = bytes the clients' sockets read (TCP payload: HTTP and WebSocket framing
//                          included), summed over every client socket, per window;
//   server RSS           = VmRSS of the server process at the end of the steady window.
// Yjs clients renew their awareness every 15 s (y-protocols' default: outdatedTimeout / 2); ours
// heartbeat every 15 s and hold a subscription: `--view full` (everyone, every change),
// `--view summary` (counts, the first 5 users and itself: what <FacePile/> asks for by default
// in a big room) or `--view auto` (the server decides by the room's size).
//
// Three windows: "join" (all clients connecting one after another, plus 1 s to settle), "steady"
// (S seconds of renewals) and "churn" (S seconds in which, every second, one client picked at
// random leaves and a new one joins). With --probes P, after the windows: P times, one more client joins and every
// subscriber's time until its list or count shows it is recorded (p50/p99/max over all of them).
//
// The clients run in --workers W threads (default 1), client i in thread i % W. Each real client
// reads its own messages on its own machine; at 10,000 clients one thread reading for all of
// them adds its queue to every latency measured, so `.ci/bench` runs those with 2. Not at 1,000
// and below: on two cores, two busy client threads leave the server less than the core it has
// otherwise (the Yjs server then falls behind its own renewals). Probe times are on one clock.
//
// WebSocket compression (permessage-deflate): every client offers it, as browsers do. Whether a
// server takes it is `--deflate`: `default` (each server as it ships: ours compresses, the Yjs
// server's `ws` does not), `on` (both: the Yjs server through yjs-deflate-server.mjs, the same
// server with `ws`'s zlib compression on) or `off` (neither: our clients do not offer it).
//
// Our clients join as `use_presence` does: the heartbeat that joins is the first message of the
// subscription socket (`subscribe?join=1`), one connection and one round trip; renewals and the
// leave go over HTTP. `--join http` joins the older way instead: `POST /heartbeat`, then the
// socket with the answer's tokens (two connections, two round trips).
//
//   node compare.mjs --server yjs|ours --clients 500 --seconds 60 [--view full|summary|auto]
//                    [--join socket|http]
//                    [--deflate default|on|off] [--probes 5] [--http-pool 256] [--workers 1] [--port 3600]
//                    [--preconnect]
//                    [--bin PATH]
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { waitForPort } from './wait-for-port.mjs';
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';
import * as awarenessProtocol from 'y-protocols/awareness';

process.setMaxListeners(0);
const here = path.dirname(fileURLToPath(import.meta.url));
const args = isMainThread
  ? Object.fromEntries(
      process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
    )
  : workerData.args;
const server = args.server ?? 'ours';
const clients = Number(args.clients ?? 500);
const seconds = Number(args.seconds ?? 60);
const port = Number(args.port ?? 3600);
const view = args.view ?? 'full';
const probes = Number(args.probes ?? 0);
const deflate = args.deflate ?? 'default';
if (!['default', 'on', 'off'].includes(deflate)) throw new Error(`--deflate default|on|off, not ${deflate}`);
// Our clients' heartbeats: one keep-alive connection each (as browsers), or, with --http-pool P,
// P connections shared by all (10,000 clients with a socket each for HTTP and one for the
// WebSocket would pass this machine's limit of 20,000 open files per process).
const httpPool = Number(args['http-pool'] ?? 0);
// --preconnect: each client's keep-alive HTTP connection is opened before the join window (as a
// browser's is, by loading the page from the same server), so the join reuses it. Without it
// the join opens the connection, and the join window pays for it.
const preconnect = 'preconnect' in args && args.preconnect !== 'off';
const workers = Math.max(1, Number(args.workers ?? 1));
const joinBy = args.join ?? 'socket';
if (!['socket', 'http'].includes(joinBy)) throw new Error(`--join socket|http, not ${joinBy}`);
const sharedAgent = httpPool > 0 ? new http.Agent({ keepAlive: true, maxSockets: Math.ceil(httpPool / workers) }) : null;
const renewMs = 15_000;
const bin = args.bin ?? path.join(here, '..', '..', '..', 'target', 'release', 'presence-bench');
const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}


function startServer() {
  return server === 'yjs'
    ? spawn(process.execPath, [deflate === 'on'
        ? path.join(here, 'yjs-deflate-server.mjs')
        : path.join(here, 'node_modules', '@y', 'websocket-server', 'src', 'server.js')], {
        env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) },
        stdio: 'ignore',
      })
    : // Every client here shares 127.0.0.1; real ones have their own addresses. The room may
      // hold every client of the run.
      spawn(bin, ['serve', '--port', String(port)], {
        env: {
          ...process.env,
          PRESENCE_ADDRESS_RATE: '0',
          PRESENCE_MAX_SOCKETS_PER_ADDRESS: String(clients * 2 + 100),
          PRESENCE_MAX_SESSIONS_PER_ROOM: String(clients * 2 + 100),
        },
        stdio: 'ignore',
      });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// One clock for every thread (each has its own performance.now() origin).
const now = () => performance.timeOrigin + performance.now();

// Every client's socket byte counters (closed ones too: what they read still counts).
const counters = [];
const totalBytes = () => counters.reduce((sum, read) => sum + read(), 0);
// While a probe runs: what a client's list or count must reach, and when the probe started.
let probe = null;

function probeSeen(i, text) {
  if (!probe || probe.seen.has(i) || i === probe.client) return;
  if (probe.check(text)) {
    probe.seen.add(i);
    probe.latencies.push(now() - probe.started);
  }
}

// A Yjs client as the server sees it, without a browser's work: on open it sends sync step 1 and
// its awareness state (what y-websocket's provider does), answers the server's sync messages, and
// renews its awareness every 15 s. Incoming awareness updates are counted, not decoded (except
// during probes): decoding them is each real client's own cost, on its own machine.
async function yjsClient(i) {
  const doc = new Y.Doc();
  const awareness = new awarenessProtocol.Awareness(doc);
  clearInterval(awareness._checkInterval);
  awareness.setLocalState({ user: { name: `User ${i}`, color: '#30bced' } });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/bench`, { perMessageDeflate: deflate !== 'off' });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const send = (write) => {
    const encoder = encoding.createEncoder();
    write(encoder);
    ws.send(encoding.toUint8Array(encoder));
  };
  const sendAwareness = () =>
    send((e) => {
      encoding.writeVarUint(e, 1);
      encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]));
    });
  ws.on('message', (data) => {
    if (data[0] === 1) {
      if (probe) probeSeen(i, data);
      return; // awareness: counted by the socket, not decoded
    }
    const decoder = decoding.createDecoder(new Uint8Array(data));
    decoding.readVarUint(decoder);
    const reply = encoding.createEncoder();
    encoding.writeVarUint(reply, 0);
    syncProtocol.readSyncMessage(decoder, reply, doc, null);
    if (encoding.length(reply) > 1) ws.send(encoding.toUint8Array(reply));
  });
  send((e) => {
    encoding.writeVarUint(e, 0);
    syncProtocol.writeSyncStep1(e, doc);
  });
  sendAwareness();
  const timer = setInterval(() => {
    awareness.setLocalState(awareness.getLocalState());
    sendAwareness();
  }, renewMs);
  counters.push(() => ws._socket?.bytesRead ?? 0);
  // Leaving: y-websocket's provider says its awareness is gone, then closes.
  return () => {
    clearInterval(timer);
    awarenessProtocol.removeAwarenessStates(awareness, [doc.clientID], 'window unload');
    sendAwareness();
    ws.close();
  };
}

function post(agent, name, body, track) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, path: name.startsWith('/') ? name : `/api/presence/${name}`, method: 'POST', agent,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(text ? JSON.parse(text) : null) : reject(new Error(`${res.statusCode} ${text}`))));
      },
    );
    req.on('socket', track);
    req.on('error', reject);
    req.end(data);
  });
}

// HTTP sockets already counted (shared ones are counted once).
const sharedSeen = new Set();

// Agents opened by --preconnect, by client.
const opened = new Map();

// Opens client i's HTTP connection with a request that does nothing (the bench server's bare
// handler), and keeps it for the client's join.
async function openConnection(i) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const track = (s) => {
    if (!sharedSeen.has(s)) {
      sharedSeen.add(s);
      counters.push(() => s.bytesRead);
    }
  };
  await post(agent, '/noop', {}, track);
  opened.set(i, agent);
}

async function ourClient(i) {
  const agent = sharedAgent ?? opened.get(i) ?? new http.Agent({ keepAlive: true, maxSockets: 1 });
  opened.delete(i);
  const seen = sharedSeen;
  const track = (s) => {
    if (!seen.has(s)) {
      seen.add(s);
      counters.push(() => s.bytesRead);
    }
  };
  const body = { room: 'bench', user: `user-${i}`, session: `session-${i}`, name: `User ${i}`, interval_ms: renewMs };
  const options = `view=${view}&k=5&me=user-${i}`;
  const firstMessage = (ws) =>
    new Promise((resolve, reject) => {
      ws.once('message', resolve);
      ws.once('error', reject);
    });
  let joined, ws;
  if (joinBy === 'socket') {
    ws = new WebSocket(`ws://127.0.0.1:${port}/api/presence/subscribe?join=1&${options}`, { perMessageDeflate: deflate !== 'off' });
    ws.once('open', () => ws.send(JSON.stringify(body)));
    const answer = JSON.parse(await firstMessage(ws));
    if (answer.type !== 'heartbeat') throw new Error(`join refused: ${JSON.stringify(answer)}`);
    joined = answer.answer;
  } else {
    joined = await post(agent, 'heartbeat', body, track);
    const url =
      `ws://127.0.0.1:${port}/api/presence/subscribe?room_token=${encodeURIComponent(joined.room_token)}` +
      `&session_token=${joined.session_token}&${options}`;
    ws = new WebSocket(url, { perMessageDeflate: deflate !== 'off' });
    await firstMessage(ws);
  }
  body.session_token = joined.session_token;
  ws.on('message', (data) => probe && probeSeen(i, data));
  counters.push(() => ws._socket?.bytesRead ?? 0);
  const timer = setInterval(() => post(agent, 'heartbeat', body, track).catch((e) => console.error('heartbeat', e.message)), renewMs);
  // Leaving: what the browser client does on unmount (`disconnect`), then the socket closes.
  return async () => {
    clearInterval(timer);
    await post(agent, 'disconnect', { session_token: joined.session_token }, track).catch(() => {});
    ws.close();
    if (agent !== sharedAgent) agent.destroy();
  };
}

const openClient = server === 'yjs' ? yjsClient : ourClient;

// What a client sees when probe client `i` joined: for Yjs an awareness update naming it; for us
// a joined diff naming it, or a summary counting it.
function probeCheck(i, onlineAfter) {
  if (server === 'yjs') {
    const name = Buffer.from(`"User ${i}"`);
    return (data) => data.includes(name);
  }
  // Read straight off the bytes, not parsed: the harness does the work of 10,000 clients on one
  // core, so its own cost per message would otherwise show up as the server's latency.
  const id = Buffer.from(`"user-${i}"`);
  const summary = Buffer.from('{"type":"summary"');
  const online = Buffer.from('"online":');
  return (data) => {
    if (data.includes(id)) return true;
    if (data.length < summary.length || !data.subarray(0, summary.length).equals(summary)) return false;
    const at = data.indexOf(online);
    if (at < 0) return false;
    let n = 0;
    for (let j = at + online.length; j < data.length && data[j] >= 48 && data[j] <= 57; j++) n = n * 10 + data[j] - 48;
    return n >= onlineAfter;
  };
}

// A client thread: opens and closes its clients, and reports their bytes and what they saw.
function serveThread() {
  const open = new Map();
  parentPort.on('message', async ({ id, cmd, i, started, onlineAfter }) => {
    try {
      let result = null;
      if (cmd === 'join') open.set(i, await openClient(i));
      else if (cmd === 'preconnect') await openConnection(i);
      else if (cmd === 'leave') {
        const leave = open.get(i);
        open.delete(i);
        await leave();
      } else if (cmd === 'bytes') result = totalBytes();
      else if (cmd === 'probe') probe = { client: i, started, seen: new Set(), latencies: [], check: probeCheck(i, onlineAfter) };
      else if (cmd === 'seen') result = probe.seen.size;
      else if (cmd === 'probe-end') {
        result = probe.latencies;
        probe = null;
      } else if (cmd === 'end') for (const leave of open.values()) leave();
      parentPort.postMessage({ id, result });
    } catch (e) {
      parentPort.postMessage({ id, error: `${cmd} ${i ?? ''}: ${e.message}` });
    }
  });
}

// The client threads, and calls to them.
const pool = [];
const waiting = new Map();
let calls = 0;
function call(thread, message) {
  return new Promise((resolve, reject) => {
    const id = calls++;
    waiting.set(id, { resolve, reject });
    thread.postMessage({ ...message, id });
  });
}
const everyThread = (message) => Promise.all(pool.map((thread) => call(thread, message)));
const threadOf = (i) => pool[i % pool.length];
async function makeClient(i) {
  await call(threadOf(i), { cmd: 'join', i });
  return () => call(threadOf(i), { cmd: 'leave', i });
}
const bytesRead = async () => (await everyThread({ cmd: 'bytes' })).reduce((sum, n) => sum + n, 0);

async function main() {
  for (let w = 0; w < workers; w++) {
    const thread = new Worker(fileURLToPath(import.meta.url), { workerData: { args } });
    thread.on('message', ({ id, result, error }) => {
      const { resolve, reject } = waiting.get(id);
      waiting.delete(id);
      if (error) reject(new Error(error));
      else resolve(result);
    });
    thread.on('error', (e) => {
      console.error('client thread failed:', e);
      process.exit(1);
    });
    pool.push(thread);
  }
  const child = startServer();
  try {
    await waitForPort(port);
    if (preconnect && server === 'ours' && !sharedAgent) {
      for (let i = 0; i < clients; i++) await call(threadOf(i), { cmd: 'preconnect', i });
    }
    await sleep(300);
    const cpuStart = cpuSeconds(child.pid);
    const bytesStart = await bytesRead();
    const started = Date.now();
    const leaves = [];
    for (let i = 0; i < clients; i++) leaves.push(await makeClient(i));
    const connectedAfter = (Date.now() - started) / 1000;
    await sleep(1000); // the last joins' messages land before the steady window starts
    const cpuJoined = cpuSeconds(child.pid);
    const bytesJoined = await bytesRead();
    await sleep(seconds * 1000);
    const cpuSteady = cpuSeconds(child.pid);
    const bytesSteady = await bytesRead();
    const rss = rssKiB(child.pid);
    // Churn: every second a client picked at random (seeded: the same ones every run) leaves and a
    // new one joins. (Were it always the longest present, the first users a summary lists would
    // change every second.)
    let seed = 1;
    const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
    let nextId = clients;
    const churnStart = Date.now();
    for (let s = 0; s < seconds; s++) {
      const [leave] = leaves.splice(Math.floor(random() * leaves.length), 1);
      await leave();
      leaves.push(await makeClient(nextId++));
      const wait = churnStart + (s + 1) * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
    }
    await sleep(500);
    const cpuChurn = cpuSeconds(child.pid);
    const bytesChurn = await bytesRead();
    let probeLine = '';
    if (probes > 0) {
      const all = [];
      for (let p = 0; p < probes; p++) {
        const i = nextId++;
        // Every thread knows what to look for before the probe client joins.
        await everyThread({ cmd: 'probe', i, started: now(), onlineAfter: clients + p + 1 });
        leaves.push(await makeClient(i));
        const deadline = Date.now() + 10_000;
        const watchers = clients + p; // everyone already there (earlier probes' clients too)
        let seen = 0;
        while (Date.now() < deadline) {
          seen = (await everyThread({ cmd: 'seen' })).reduce((sum, n) => sum + n, 0);
          if (seen >= watchers) break;
          await sleep(20);
        }
        for (const latencies of await everyThread({ cmd: 'probe-end' })) all.push(...latencies);
        if (seen < watchers) console.error(`probe ${p}: ${watchers - seen} subscribers did not see it in 10 s`);
        await sleep(500);
      }
      all.sort((a, b) => a - b);
      const at = (q) => all[Math.min(all.length - 1, Math.floor(q * all.length))] ?? NaN;
      probeLine = ` probe_n=${all.length} probe_p50_ms=${at(0.5).toFixed(1)} probe_p99_ms=${at(0.99).toFixed(1)} probe_max_ms=${at(1).toFixed(1)}`;
    }
    console.log(
      `compare server=${server} view=${server === 'yjs' ? '-' : view} deflate=${deflate} clients=${clients} seconds=${seconds} connect_s=${connectedAfter.toFixed(1)} ` +
        `join_cpu_s=${(cpuJoined - cpuStart).toFixed(2)} join_bytes=${bytesJoined - bytesStart} ` +
        `steady_cpu_s=${(cpuSteady - cpuJoined).toFixed(2)} steady_bytes=${bytesSteady - bytesJoined} ` +
        `churn_cpu_s=${(cpuChurn - cpuSteady).toFixed(2)} churn_bytes=${bytesChurn - bytesSteady} ` +
        `rss_kib=${rss} rss_per_client_b=${Math.round((rss * 1024) / clients)}` +
        probeLine,
    );
    await everyThread({ cmd: 'end' });
  } finally {
    child.kill('SIGKILL');
  }
  process.exit(0);
}

if (isMainThread) await main();
else serveThread();
