// The Yjs awareness server of @y/websocket-server (src/server.js), with one change: `ws`'s
// permessage-deflate on (its defaults: zlib, context kept across messages). For
// `compare.mjs --deflate on`, so compression is compared with compression.
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { setupWSConnection } from '@y/websocket-server/utils';

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: true });
const host = process.env.HOST || 'localhost';
const port = Number(process.env.PORT || 1234);
const server = http.createServer((_request, response) => {
  response.writeHead(200, { 'Content-Type': 'text/plain' });
  response.end('okay');
});
wss.on('connection', setupWSConnection);
server.on('upgrade', (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
});
server.listen(port, host, () => console.log(`running at '${host}' on port ${port}`));
