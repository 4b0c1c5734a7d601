// Whatever a peer sends is shown as text: HTML in names and messages is never parsed or run,
// and frames that are not chat messages are shown as such.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { openChat, waitForConnected } from './support/browser.js';
import { startSignalingServer } from './support/processes.js';

const HOSTILE_NAME = '<img src=x onerror="window.__pwned=\'name\'">';
const HOSTILE_TEXT = '<script>window.__pwned="script"</script><img src=x onerror="window.__pwned=\'img\'"><b>bold?</b>';
const NOT_JSON = '<svg onload="window.__pwned=\'svg\'"></svg>{oops';
const WRONG_TYPES = JSON.stringify({ type: 'message', name: ['<i>x</i>'], text: 42 });

for (const engine of ENGINES) {
  test(`${engine.name}: hostile and malformed messages from a peer are shown as text, never run`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const victim = await browser.newPage();
    const victimId = await openChat(victim, server.httpUrl, 'hostile', 'Victim');

    // The attacker uses the client module directly, as a web developer's own page would,
    // so it can send raw frames that the chat page would never produce.
    const attacker = await browser.newPage();
    await attacker.goto(server.httpUrl);
    await attacker.evaluate(
      async ({ wsUrl, victimId, name }) => {
        const { joinRoom } = await import('/js/room.js');
        const room = joinRoom(wsUrl, 'hostile', { name });
        window.attackerRoom = room;
        await new Promise((resolve, reject) => {
          room.addEventListener('channel-open', (e) => e.detail.peerId === victimId && resolve());
          setTimeout(() => reject(new Error('no channel to the victim within 20 s')), 20_000);
        });
      },
      { wsUrl: server.wsUrl, victimId, name: HOSTILE_NAME },
    );
    await waitForConnected(victim, 1);

    await attacker.evaluate(
      ({ text, notJson, wrongTypes }) => {
        const room = window.attackerRoom;
        room.broadcastText(text);
        room.broadcast(notJson);
        room.broadcast(wrongTypes);
        room.broadcast(new Uint8Array([0, 1, 2, 255]));
        room.broadcastText('last one');
      },
      { text: HOSTILE_TEXT, notJson: NOT_JSON, wrongTypes: WRONG_TYPES },
    );
    await victim.waitForFunction(() =>
      [...document.querySelectorAll('#messages .text')].some((t) => t.textContent === 'last one'),
    );

    const shown = await victim.evaluate(() => ({
      messages: [...document.querySelectorAll('#messages .message:not(.mine)')].map((m) => ({
        from: m.querySelector('.from').textContent,
        text: m.querySelector('.text').textContent,
        malformed: m.classList.contains('malformed'),
      })),
      peerNames: [...document.querySelectorAll('#peer-list .peer-name')].map((n) => n.textContent),
      // Every element the page holds below its lists; nothing a peer sent may have become one.
      tags: [...new Set([...document.querySelectorAll('#messages *, #peer-list *')].map((e) => e.tagName.toLowerCase()))].sort(),
      foreign: document.querySelectorAll('img, script:not([src]), svg, b, i').length,
      pwned: window.__pwned ?? null,
    }));

    assert.deepEqual(shown.messages, [
      { from: HOSTILE_NAME, text: HOSTILE_TEXT, malformed: false },
      { from: HOSTILE_NAME, text: NOT_JSON, malformed: true },
      { from: HOSTILE_NAME, text: WRONG_TYPES, malformed: true },
      { from: HOSTILE_NAME, text: '4 bytes of binary data', malformed: true },
      { from: HOSTILE_NAME, text: 'last one', malformed: false },
    ]);
    assert.deepEqual(shown.peerNames, [HOSTILE_NAME]);
    assert.deepEqual(shown.tags, ['code', 'div', 'li', 'p', 'span']);
    assert.equal(shown.foreign, 0);
    // Give an injected handler the chance to run if one had been created.
    await victim.waitForTimeout(300);
    assert.equal(await victim.evaluate(() => window.__pwned ?? null), null);
    assert.deepEqual(browser.pageErrors, []);
  });
}
