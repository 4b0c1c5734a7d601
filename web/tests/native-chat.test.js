// A browser page and the native `peer-client chat` talk both ways: lines typed into the
// CLI appear on the page, messages sent from the page are printed by the CLI.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { openChat, sendMessage, waitForConnected, waitForLink, waitForMessage } from './support/browser.js';
import { startPeerClient, startSignalingServer } from './support/processes.js';

for (const engine of ENGINES) {
  test(`${engine.name}: a browser page and peer-client chat talk both ways`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const page = await browser.newPage();
    const pageId = await openChat(page, server.httpUrl, 'native-chat', 'Ada');
    const cli = startPeerClient('chat', { wsUrl: server.wsUrl, room: 'native-chat', args: ['--name', 'Linus'] });
    t.after(() => cli.kill());

    const cliId = await waitForLink(page);
    assert.notEqual(cliId, pageId);
    await waitForConnected(page, 1);

    // Page → CLI. The CLI's own channel may open a moment after the page's, so the first
    // message is sent until it arrives (bounded); the CLI printing it proves its side is open.
    const first = 'hello from the browser';
    const deadline = Date.now() + 15_000;
    let printed = null;
    while (!printed && Date.now() < deadline) {
      await sendMessage(page, first);
      printed = await cli.waitForLine(first, { stream: 'stdout', timeoutMs: 1500 }).catch(() => null);
    }
    assert.ok(printed, `peer-client chat never printed the browser's message\n${cli.log()}`);
    assert.match(printed, /Ada/, 'the CLI shows the sender name');

    // CLI → page, including text a browser must not parse as HTML.
    cli.writeLine('hello from the terminal');
    assert.deepEqual(await waitForMessage(page, 'hello from the terminal'), { from: 'Linus', text: 'hello from the terminal' });
    const html = '<img src=x onerror="window.__pwned=1"> <b>not bold</b>';
    cli.writeLine(html);
    assert.deepEqual(await waitForMessage(page, html), { from: 'Linus', text: html });
    assert.equal(await page.evaluate(() => document.querySelectorAll('#messages img, #messages b').length), 0);

    const after = cli.cursor;
    await sendMessage(page, 'second from the browser');
    await cli.waitForLine('second from the browser', { stream: 'stdout', after });
    assert.equal(await page.evaluate(() => window.__pwned ?? null), null);
    assert.deepEqual(browser.pageErrors, []);
  });

  test(`${engine.name}: a page and peer-client chat find each other again after a server restart`, { timeout: 120_000 }, async (t) => {
    let server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());
    const cli = startPeerClient('chat', { wsUrl: server.wsUrl, room: 'native-restart', args: ['--name', 'Linus'] });
    t.after(() => cli.kill());

    const page = await browser.newPage();
    await openChat(page, server.httpUrl, 'native-restart', 'Ada');
    const oldId = await waitForLink(page);

    await server.child.kill('SIGKILL');
    server = await startSignalingServer({ port: server.port });
    // Both come back as new peers of the new server and link again: one link, under the new id.
    await page.waitForFunction(
      (oldId) => {
        const peers = [...document.querySelectorAll('#peer-list .peer')];
        return peers.length === 1 && peers[0].dataset.peerId !== oldId && peers[0].dataset.state === 'direct';
      },
      oldId,
      { timeout: 40_000 },
    );
    await waitForConnected(page, 2);

    const after = cli.cursor;
    await sendMessage(page, 'after the restart');
    await cli.waitForLine('Ada: after the restart', { stream: 'stdout', after });
    cli.writeLine('the terminal is back too');
    assert.deepEqual(await waitForMessage(page, 'the terminal is back too'), { from: 'Linus', text: 'the terminal is back too' });
    assert.equal(await page.evaluate(() => document.querySelectorAll('#peer-list .peer').length), 1);
    assert.deepEqual(browser.pageErrors, []);
  });
}
