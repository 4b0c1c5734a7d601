// A TCP relay on a loopback port in front of the signaling server, which the test can take offline:
// it cuts every connection through it and refuses new ones until it is back. A page served through
// the relay reaches the server (its WebSocket included) only through it, in any browser engine.

import net from 'node:net';

/**
 * Starts a relay to `target` (`{host, port}`); resolves to `{port, httpUrl, wsUrl, setOffline, close}`.
 */
export async function startTcpRelay(target) {
  const pairs = new Set();
  let offline = false;
  const server = net.createServer((client) => {
    if (offline) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    httpUrl: `http://127.0.0.1:${port}/`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    /** Offline: every connection is cut now and new ones are refused; online: they pass again. */
    setOffline(value) {
      offline = value;
      if (!value) return;
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    close() {
      this.setOffline(true);
      server.close();
    },
  };
}
