// A browser page and the native `peer-client echo` bot exchange messages both ways, in Chromium
// and in Firefox.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openChat, sendMessage, waitForConnected, waitForLink, waitForMessage } from './support/browser.js';
import { ENGINES } from './support/engines.js';
import { startPeerClient, startSignalingServer } from './support/processes.js';

for (const engine of ENGINES) {
  test(`${engine.name}: a browser page and peer-client echo exchange messages both ways`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const bot = startPeerClient('echo', { wsUrl: server.wsUrl, room: 'echo' });
    t.after(() => bot.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const page = await browser.newPage();
    await openChat(page, server.httpUrl, 'echo', 'Ada');
    // The bot joined first, so the page (the newcomer) offers; the link must come up direct.
    const botId = await waitForLink(page);
    assert.equal(await page.getAttribute(`#peer-list [data-peer-id="${botId}"]`, 'data-state'), 'direct');
    await waitForConnected(page, 1);

    for (const text of ['ping 1', 'second: ünïcödé ✓ 🚀', '{"looks":"like json"}']) {
      await sendMessage(page, text);
      // The echo comes back unchanged, so it carries our own name.
      assert.deepEqual(await waitForMessage(page, text), { from: 'Ada', text });
    }
    assert.equal(bot.exitStatus, null, `the bot exited:\n${bot.log()}`);
    assert.deepEqual(browser.pageErrors, []);
  });

  test(`${engine.name}: peer-client echo joining after the page also connects (the bot offers)`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const page = await browser.newPage();
    await openChat(page, server.httpUrl, 'echo-late', 'Ada');
    const bot = startPeerClient('echo', { wsUrl: server.wsUrl, room: 'echo-late' });
    t.after(() => bot.kill());

    await waitForLink(page);
    await waitForConnected(page, 1);
    await sendMessage(page, 'hello late bot');
    assert.deepEqual(await waitForMessage(page, 'hello late bot'), { from: 'Ada', text: 'hello late bot' });
    assert.deepEqual(browser.pageErrors, []);
  });

  test(`${engine.name}: peer-client echo keeps answering the page after the server is killed`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const bot = startPeerClient('echo', { wsUrl: server.wsUrl, room: 'echo-gone' });
    t.after(() => bot.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const page = await browser.newPage();
    await openChat(page, server.httpUrl, 'echo-gone', 'Ada');
    const botId = await waitForLink(page);
    await waitForConnected(page, 1);
    await sendMessage(page, 'before');
    await waitForMessage(page, 'before');

    await server.child.kill('SIGKILL');
    await page.waitForSelector('#server-notice', { state: 'visible' });
    await sendMessage(page, 'after the server is gone');
    assert.deepEqual(await waitForMessage(page, 'after the server is gone'), { from: 'Ada', text: 'after the server is gone' });
    assert.equal(await page.getAttribute(`#peer-list [data-peer-id="${botId}"]`, 'data-state'), 'direct');
    assert.equal(bot.exitStatus, null, `the bot exited:\n${bot.log()}`);
    assert.deepEqual(browser.pageErrors, []);
  });
}
