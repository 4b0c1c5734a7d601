// When the signaling server comes back after a restart (with no memory of the room), the pages
// join again by themselves, as new peers, and chat again over new links.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { openChat, sendMessage, waitForLink, waitForMessage } from './support/browser.js';
import { startSignalingServer } from './support/processes.js';

for (const engine of ENGINES) {
  test(`${engine.name}: pages rejoin a restarted signaling server and chat again`, { timeout: 120_000 }, async (t) => {
    let server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const ada = await browser.newPage();
    const grace = await browser.newPage();
    const adaId = await openChat(ada, server.httpUrl, 'restart', 'Ada');
    const graceId = await openChat(grace, server.httpUrl, 'restart', 'Grace');
    await waitForLink(ada, { peerId: graceId });
    await waitForLink(grace, { peerId: adaId });

    await server.child.kill('SIGKILL');
    await ada.waitForSelector('#server-notice', { state: 'visible' });
    server = await startSignalingServer({ port: server.port });

    // Backoff is at most a few seconds this early; both pages get new ids from the new server.
    for (const [page, oldId] of [[ada, adaId], [grace, graceId]]) {
      await page.waitForFunction((oldId) => document.body.dataset.peerId !== oldId, oldId, { timeout: 30_000 });
      await page.waitForSelector('#server-notice', { state: 'hidden' });
      assert.equal(await page.getAttribute('#signaling-status', 'data-state'), 'open');
    }
    const newAda = await ada.evaluate(() => document.body.dataset.peerId);
    const newGrace = await grace.evaluate(() => document.body.dataset.peerId);
    await waitForLink(ada, { peerId: newGrace });
    await waitForLink(grace, { peerId: newAda });
    // Only the new link is listed: the old one was closed on both sides.
    await ada.waitForFunction(() => document.querySelectorAll('#peer-list .peer').length === 1);
    await grace.waitForFunction(() => document.querySelectorAll('#peer-list .peer').length === 1);

    await sendMessage(grace, 'back again');
    assert.equal((await waitForMessage(ada, 'back again')).from, 'Grace');
    await sendMessage(ada, 'welcome back');
    assert.equal((await waitForMessage(grace, 'welcome back')).from, 'Ada');
    assert.deepEqual(browser.pageErrors, []);
  });
}
