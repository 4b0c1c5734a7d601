// Joining from the form gives a shareable link; a join the server refuses is explained on the page.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { openChat, waitForLink } from './support/browser.js';
import { startSignalingServer } from './support/processes.js';

for (const engine of ENGINES) {
  test(`${engine.name}: joining from the form puts the room in the link, which joins the same room`, { timeout: 60_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const ada = await browser.newPage();
    await ada.goto(server.httpUrl);
    assert.equal(await ada.isVisible('#join-view'), true);
    await ada.fill('#room-input', 'from the form ✓');
    await ada.fill('#name-input', 'Ada');
    await ada.click('#join-form button[type=submit]');
    await ada.waitForFunction(() => document.body.dataset.peerId);
    const adaId = await ada.evaluate(() => document.body.dataset.peerId);
    assert.equal(await ada.isVisible('#join-view'), false);
    assert.equal(await ada.textContent('#room-name'), 'from the form ✓');

    const link = await ada.getAttribute('#share-link', 'href');
    assert.equal(new URL(link).searchParams.get('room'), 'from the form ✓');
    assert.equal(ada.url(), link);

    // The link in another browser tab joins the same room; `#room=` works as well.
    const grace = await browser.newPage();
    await grace.goto(link);
    await waitForLink(grace, { peerId: adaId });
    const linus = await browser.newPage();
    await linus.goto(`${server.httpUrl}#room=${encodeURIComponent('from the form ✓')}&name=Linus`);
    await waitForLink(linus, { peerId: adaId });
    // The name typed last time is remembered.
    const later = await browser.newPage();
    await later.goto(server.httpUrl);
    assert.equal(await later.inputValue('#name-input'), 'Linus');
    assert.deepEqual(browser.pageErrors, []);
  });

  test(`${engine.name}: a join the server refuses is explained and the form comes back`, { timeout: 60_000 }, async (t) => {
    const server = await startSignalingServer({ args: ['--max-peers-per-room', '1'] });
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    const ada = await browser.newPage();
    await openChat(ada, server.httpUrl, 'tiny', 'Ada');
    const grace = await browser.newPage();
    await grace.goto(`${server.httpUrl}?room=tiny&name=Grace`);
    await grace.waitForSelector('#join-error', { state: 'visible' });
    assert.equal(await grace.getAttribute('#join-error', 'data-code'), 'room_full');
    // The server's explanation is shown; it names the room.
    assert.match(await grace.textContent('#join-error'), /^Could not join: .*tiny/);
    assert.equal(await grace.isVisible('#join-view'), true);
    assert.equal(await grace.isVisible('#chat-view'), false);

    // Another room works from the same page.
    await grace.fill('#room-input', 'roomier');
    await grace.click('#join-form button[type=submit]');
    await grace.waitForFunction(() => document.body.dataset.peerId);
    assert.equal(await grace.isVisible('#join-error'), false);
    assert.deepEqual(browser.pageErrors, []);
  });

  test(`${engine.name}: the page built into the server binary works like the one on disk`, { timeout: 60_000 }, async (t) => {
    const server = await startSignalingServer({ embedded: true });
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());

    for (const [file, type] of [['', /^text\/html/], ['js/room.js', /javascript/], ['style.css', /^text\/css/]]) {
      const response = await fetch(new URL(file, server.httpUrl));
      assert.equal(response.status, 200, file);
      assert.match(response.headers.get('content-type'), type, file);
    }
    // The browser tests' own files are not part of the served client.
    assert.equal((await fetch(new URL('tests/package.json', server.httpUrl))).status, 404);

    const ada = await browser.newPage();
    const grace = await browser.newPage();
    const adaId = await openChat(ada, server.httpUrl, 'embedded', 'Ada');
    await openChat(grace, server.httpUrl, 'embedded', 'Grace');
    await waitForLink(grace, { peerId: adaId });
    assert.deepEqual(browser.pageErrors, []);
  });
}
