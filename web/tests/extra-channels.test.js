// The module opens more channels next to `chat` and carries binary data on them, as a file
// transfer will: 1 MiB in 16 KiB chunks with backpressure, checked by SHA-256 on arrival.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';

const TOTAL_BYTES = 1024 * 1024;
const CHUNK_BYTES = 16 * 1024;

for (const engine of ENGINES) {
  test(`${engine.name}: a second channel carries binary data intact`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const [sender, receiver] = [await browser.newPage(), await browser.newPage()];
    const ids = [];
    for (const page of [sender, receiver]) {
      await page.goto(server.httpUrl);
      ids.push(
        await page.evaluate(async (wsUrl) => {
          const { joinRoom } = await import('/js/room.js');
          const room = joinRoom(wsUrl, 'channels', { name: 'bytes' });
          window.room = room;
          window.opened = [];
          window.chunks = [];
          room.addEventListener('channel-open', (e) => window.opened.push(e.detail.label));
          room.addEventListener('message', (e) => {
            if (e.detail.label === 'files') window.chunks.push(e.detail.data);
          });
          return room.ready;
        }, server.wsUrl),
      );
    }
    await sender.waitForFunction(() => window.opened.includes('chat'));

    const sentDigest = await sender.evaluate(
      async ({ peerId, total, chunk }) => {
        const channel = await window.room.openChannel(peerId, 'files');
        const data = new Uint8Array(total);
        for (let i = 0; i < total; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
        channel.bufferedAmountLowThreshold = 256 * 1024;
        for (let offset = 0; offset < total; offset += chunk) {
          if (channel.bufferedAmount > 1024 * 1024) {
            await new Promise((resolve) => channel.addEventListener('bufferedamountlow', resolve, { once: true }));
          }
          if (!window.room.send(peerId, data.subarray(offset, offset + chunk), 'files')) throw new Error('send refused');
        }
        const digest = await crypto.subtle.digest('SHA-256', data);
        return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
      },
      { peerId: ids[1], total: TOTAL_BYTES, chunk: CHUNK_BYTES },
    );

    await receiver.waitForFunction((total) => window.chunks.reduce((n, c) => n + c.byteLength, 0) >= total, TOTAL_BYTES);
    const received = await receiver.evaluate(async () => {
      const all = new Uint8Array(window.chunks.reduce((n, c) => n + c.byteLength, 0));
      let offset = 0;
      for (const c of window.chunks) {
        if (!(c instanceof ArrayBuffer)) throw new Error(`expected ArrayBuffer, got ${typeof c}`);
        all.set(new Uint8Array(c), offset);
        offset += c.byteLength;
      }
      const digest = await crypto.subtle.digest('SHA-256', all);
      return {
        bytes: all.byteLength,
        digest: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''),
        opened: window.opened,
        chunkCount: window.chunks.length,
      };
    });
    assert.equal(received.bytes, TOTAL_BYTES);
    assert.equal(received.digest, sentDigest);
    assert.equal(received.chunkCount, TOTAL_BYTES / CHUNK_BYTES);
    assert.deepEqual(received.opened.sort(), ['chat', 'files']);
    // The chat channel is unaffected.
    assert.equal(await sender.evaluate((id) => window.room.channel(id, 'chat').readyState, ids[1]), 'open');
    assert.deepEqual(browser.pageErrors, []);
  });
}
