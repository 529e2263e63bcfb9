// Side by side: the Yjs awareness server (@y/websocket-server) and leptos-presence, each with N
// clients in one room for S seconds, measured the same way:
//   server CPU seconds  = utime + stime of the server process (/proc/<pid>/stat), over the run;
//   bytes sent by server = bytes the clients' sockets read (TCP payload: HTTP and WebSocket framing
//                          included), summed over every client socket.
// Yjs clients renew their awareness every 15 s (y-protocols' default: outdatedTimeout / 2); ours
// heartbeat every 15 s and hold a subscription. Loopback only; the run ends by itself.
//
// Two windows are reported: "join" (all clients connecting, plus 1 s to settle) and "steady" (the
// S seconds after), and their total.
//
//   node compare.mjs --server yjs|ours --clients 500 --seconds 60 [--port 3600] [--bin PATH]
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';
import * as awarenessProtocol from 'y-protocols/awareness';

process.setMaxListeners(0);
const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const server = args.server ?? 'ours';
const clients = Number(args.clients ?? 500);
const seconds = Number(args.seconds ?? 60);
const port = Number(args.port ?? 3600);
const renewMs = 15_000;
const bin = args.bin ?? path.join(here, '..', '..', '..', 'target', 'release', 'presence-bench');
const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

async function waitForPort() {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server did not listen on ${port}`);
}

function startServer() {
  const child =
    server === 'yjs'
      ? spawn(process.execPath, [path.join(here, 'node_modules', '@y', 'websocket-server', 'src', 'server.js')], {
          env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) },
          stdio: 'ignore',
        })
      : // Every client here shares 127.0.0.1; real ones have their own addresses.
        spawn(bin, ['serve', '--port', String(port)], {
          env: { ...process.env, PRESENCE_ADDRESS_RATE: '0' },
          stdio: 'ignore',
        });
  return child;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A Yjs client as the server sees it, without a browser's work: on open it sends sync step 1 and
// its awareness state (what y-websocket's provider does), answers the server's sync messages, and
// renews its awareness every 15 s. Incoming awareness updates are counted, not decoded: decoding
// them is each real client's own cost, on its own machine, and doing it for N clients in this one
// process would make the harness, not the server, the bottleneck.
async function yjsClients(sockets, closers) {
  for (let i = 0; i < clients; i++) {
    const doc = new Y.Doc();
    const awareness = new awarenessProtocol.Awareness(doc);
    clearInterval(awareness._checkInterval);
    awareness.setLocalState({ user: { name: `User ${i}`, color: '#30bced' } });
    const ws = new WebSocket(`ws://127.0.0.1:${port}/bench`);
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
      if (data[0] !== 0) return; // awareness: counted by the socket, not decoded
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
    sockets.push(() => ws._socket?.bytesRead ?? 0);
    closers.push(() => (clearInterval(timer), ws.close()));
  }
}

function post(agent, body, track) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, path: '/api/presence/heartbeat', method: 'POST', agent,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${res.statusCode} ${text}`))));
      },
    );
    req.on('socket', track);
    req.on('error', reject);
    req.end(data);
  });
}

async function ourClients(sockets, closers) {
  for (let i = 0; i < clients; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const seen = new Set();
    const track = (s) => {
      if (!seen.has(s)) {
        seen.add(s);
        sockets.push(() => s.bytesRead);
      }
    };
    const body = { room: 'bench', user: `user-${i}`, session: `session-${i}`, name: `User ${i}`, interval_ms: renewMs };
    const joined = await post(agent, body, track);
    body.session_token = joined.session_token;
    const url = `ws://127.0.0.1:${port}/api/presence/subscribe?room_token=${encodeURIComponent(joined.room_token)}&session_token=${joined.session_token}`;
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once('message', resolve);
      ws.once('error', reject);
    });
    sockets.push(() => ws._socket?.bytesRead ?? 0);
    const timer = setInterval(() => post(agent, body, track).catch((e) => console.error('heartbeat', e.message)), renewMs);
    closers.push(() => (clearInterval(timer), ws.close(), agent.destroy()));
  }
}

const child = startServer();
try {
  await waitForPort();
  await sleep(300);
  const cpuStart = cpuSeconds(child.pid);
  const started = Date.now();
  const sockets = [];
  const closers = [];
  await (server === 'yjs' ? yjsClients(sockets, closers) : ourClients(sockets, closers));
  const connectedAfter = (Date.now() - started) / 1000;
  const total = () => sockets.reduce((sum, read) => sum + read(), 0);
  // Let the last joins' messages land before the steady window starts.
  await sleep(1000);
  const cpuJoined = cpuSeconds(child.pid);
  const bytesJoined = total();
  await sleep(seconds * 1000);
  const cpuEnd = cpuSeconds(child.pid);
  const bytesEnd = total();
  console.log(
    `compare server=${server} clients=${clients} seconds=${seconds} connect_s=${connectedAfter.toFixed(1)} ` +
      `join_cpu_s=${(cpuJoined - cpuStart).toFixed(2)} join_bytes=${bytesJoined} ` +
      `steady_cpu_s=${(cpuEnd - cpuJoined).toFixed(2)} steady_bytes=${bytesEnd - bytesJoined} ` +
      `total_cpu_s=${(cpuEnd - cpuStart).toFixed(2)} total_bytes=${bytesEnd}`,
  );
  closers.forEach((close) => close());
} finally {
  child.kill('SIGKILL');
}
process.exit(0);
