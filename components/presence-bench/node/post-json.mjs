// POSTs `body` as JSON to the bench server's `/api/presence/<name>` on 127.0.0.1:`port` through
// `agent`; resolves with the parsed answer (null for an empty one), rejects on any other status.
import http from 'node:http';

export function postJson(agent, port, name, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, path: `/api/presence/${name}`, method: 'POST', agent,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(text ? JSON.parse(text) : null) : reject(new Error(`${name}: ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}
