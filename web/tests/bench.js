// Prints figures for the browser client on loopback (not a test; nothing here passes or fails):
//   - page to page: join to `chat` channel open, and throughput of a second channel (binary, backpressured)
//   - page to `peer-client echo`: round trip of chat messages (p50 / p95 / max)
// Run after `cargo build --bins` (use --release binaries through SIGNALING_SERVER_BIN / PEER_CLIENT_BIN
// for figures worth quoting): node web/tests/bench.js [--mib 64] [--messages 300]

import { launchBrowser } from './support/browser.js';
import { startPeerClient, startSignalingServer } from './support/processes.js';

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const MIB = arg('mib', 64);
const MESSAGES = arg('messages', 300);

const server = await startSignalingServer();
const browser = await launchBrowser();
let bot = null;
try {
  // Page to page.
  const pages = [await browser.newPage(), await browser.newPage()];
  const ids = [];
  for (const page of pages) {
    await page.goto(server.httpUrl);
    ids.push(
      await page.evaluate(async (wsUrl) => {
        const { joinRoom } = await import('/js/room.js');
        window.started = performance.now();
        const room = joinRoom(wsUrl, 'bench', { name: 'bench' });
        window.room = room;
        window.chatOpenMs = new Promise((resolve) =>
          room.addEventListener('channel-open', (e) => e.detail.label === 'chat' && resolve(performance.now() - window.started)),
        );
        window.receivedBytes = 0;
        room.addEventListener('message', (e) => {
          if (e.detail.label !== 'bulk') return;
          window.receivedBytes += e.detail.data.byteLength;
          window.lastByteAt = Date.now();
        });
        return room.ready;
      }, server.wsUrl),
    );
  }
  const openMs = await pages[1].evaluate(() => window.chatOpenMs);
  console.log(`page to page: join of the second page to chat channel open: ${openMs.toFixed(0)} ms`);

  const total = MIB * 1024 * 1024;
  const sendStartedAt = await pages[0].evaluate(
    async ({ peerId, total }) => {
      const channel = await window.room.openChannel(peerId, 'bulk');
      const chunk = new Uint8Array(64 * 1024);
      channel.bufferedAmountLowThreshold = 1024 * 1024;
      const startedAt = Date.now();
      (async () => {
        for (let sent = 0; sent < total; sent += chunk.byteLength) {
          if (channel.bufferedAmount > 4 * 1024 * 1024) {
            await new Promise((resolve) => channel.addEventListener('bufferedamountlow', resolve, { once: true }));
          }
          channel.send(chunk);
        }
      })();
      return startedAt;
    },
    { peerId: ids[1], total },
  );
  await pages[1].waitForFunction((total) => window.receivedBytes >= total, total, { timeout: 300_000, polling: 100 });
  // Both pages read the same system clock.
  const elapsed = ((await pages[1].evaluate(() => window.lastByteAt)) - sendStartedAt) / 1000;
  console.log(`page to page: ${MIB} MiB on a second channel in ${elapsed.toFixed(2)} s = ${(total / elapsed / 1e6).toFixed(1)} MB/s`);

  // Page to the native echo bot.
  bot = startPeerClient('echo', { wsUrl: server.wsUrl, room: 'bench-echo' });
  const page = await browser.newPage();
  await page.goto(server.httpUrl);
  const rtt = await page.evaluate(async ({ wsUrl, count }) => {
    // The module alone, so the page's rendering is not measured.
    const { joinRoom } = await import('/js/room.js');
    const room = joinRoom(wsUrl, 'bench-echo', { name: 'rtt' });
    const peerId = await new Promise((resolve) => {
      room.addEventListener('channel-open', (e) => e.detail.label === 'chat' && resolve(e.detail.peerId));
    });
    const bot = peerId;
    const times = [];
    for (let i = 0; i < count; i += 1) {
      const text = `rtt ${i}`;
      const start = performance.now();
      await new Promise((resolve) => {
        const onMessage = (e) => {
          if (e.detail.peerId === bot && e.detail.text === text) {
            room.removeEventListener('message', onMessage);
            resolve();
          }
        };
        room.addEventListener('message', onMessage);
        room.sendText(bot, text);
      });
      times.push(performance.now() - start);
    }
    room.close();
    times.sort((a, b) => a - b);
    return { p50: times[Math.floor(count * 0.5)], p95: times[Math.floor(count * 0.95)], max: times[count - 1] };
  }, { wsUrl: server.wsUrl, count: MESSAGES });
  console.log(
    `page to peer-client echo: chat message round trip over ${MESSAGES} messages: ` +
      `p50 ${rtt.p50.toFixed(2)} ms, p95 ${rtt.p95.toFixed(2)} ms, max ${rtt.max.toFixed(2)} ms`,
  );
} finally {
  await bot?.kill();
  await browser.close();
  await server.child.kill();
}
