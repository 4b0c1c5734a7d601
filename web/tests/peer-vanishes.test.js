// A peer that vanishes without a goodbye (its process killed) leaves the page's peer list once
// the server has given up on it and the link has stopped answering.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { openChat, waitForConnected, waitForLink } from './support/browser.js';
import { startPeerClient, startSignalingServer } from './support/processes.js';

for (const engine of ENGINES) {
  test(`${engine.name}: a killed peer-client leaves the peer list`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer({ args: ['--resume-grace', '1s'] });
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const page = await browser.newPage();
    await openChat(page, server.httpUrl, 'vanish', 'Ada');
    const cli = startPeerClient('chat', { wsUrl: server.wsUrl, room: 'vanish', args: ['--name', 'Linus'] });
    t.after(() => cli.kill());
    const cliId = await waitForLink(page);
    await waitForConnected(page, 1);

    const killedAt = Date.now();
    await cli.kill('SIGKILL');
    // Chrome reports the link down about 5 s after the peer stops answering, and `failed` only
    // after about 15 s; the page drops the peer at the first, since the server said it left.
    await page.waitForSelector(`#peer-list [data-peer-id="${cliId}"]`, { state: 'detached', timeout: 12_000 });
    const seconds = (Date.now() - killedAt) / 1000;
    await page.waitForFunction(() => [...document.querySelectorAll('#messages .system')].some((m) => / left\.$/.test(m.textContent)));
    assert.equal(await page.isVisible('#no-peers'), true);
    t.diagnostic(`the killed peer left the list after ${seconds.toFixed(1)} s`);
    assert.deepEqual(browser.pageErrors, []);
  });
}
