// The CommonJS declarations (dist/cjs, the "require" condition) give the same types.
import nodeDgram = require('node:dgram');
import facade = require('udp-ring/dgram');

const socket: nodeDgram.Socket = facade.createSocket('udp4', (msg, rinfo) => {
  const text: string = msg.toString('utf8', 0, rinfo.size);
  void text;
});
socket.send('x', 9, '127.0.0.1', (err, bytes) => void [err?.message, bytes.toFixed()]);
const maker: typeof nodeDgram.createSocket = facade.createSocket;
void maker;
