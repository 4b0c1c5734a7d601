// Links through a TURN relay are reported as `relayed`, and carry messages.
// Uses the client module directly, as a web developer's page would, with ICE servers of its own.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { startTurnServer } from './support/turn.js';

for (const engine of ENGINES) {
  test(`${engine.name}: a link through a TURN relay is reported as relayed and carries messages`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const turn = await startTurnServer();
    t.after(() => turn.stop());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const pages = [await browser.newPage(), await browser.newPage()];
    const ids = [];
    for (const [index, page] of pages.entries()) {
      await page.goto(server.httpUrl);
      ids.push(
        await page.evaluate(
          async ({ wsUrl, iceServers, name }) => {
            const { joinRoom } = await import('/js/room.js');
            const room = joinRoom(wsUrl, 'relayed', { name, iceServers, iceTransportPolicy: 'relay' });
            window.room = room;
            window.states = [];
            window.received = [];
            room.addEventListener('link-state', (e) => window.states.push(e.detail.state));
            room.addEventListener('message', (e) => window.received.push(`${e.detail.name}: ${e.detail.text}`));
            return room.ready;
          },
          { wsUrl: server.wsUrl, iceServers: turn.iceServers, name: `peer${index}` },
        ),
      );
    }
    for (const page of pages) {
      await page.waitForFunction(() => window.states.includes('relayed') || window.states.includes('failed'));
      assert.deepEqual(await page.evaluate(() => window.states), ['relayed']);
      await page.waitForFunction(() => window.room.channel(window.room.peers[0])?.readyState === 'open');
    }
    assert.equal(await pages[0].evaluate((id) => window.room.linkState(id), ids[1]), 'relayed');

    assert.equal(await pages[0].evaluate(() => window.room.broadcastText('through the relay')), 1);
    await pages[1].waitForFunction(() => window.received.includes('peer0: through the relay'));
    assert.equal(await pages[1].evaluate((id) => window.room.sendText(id, 'and back'), ids[0]), true);
    await pages[0].waitForFunction(() => window.received.includes('peer1: and back'));
    assert.deepEqual(browser.pageErrors, []);
  });
}
