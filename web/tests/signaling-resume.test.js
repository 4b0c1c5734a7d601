// A peer whose signaling socket drops resumes its session: it keeps its id and its links,
// and receives the signals sent to it while it was away (in both engines). The tests that change
// what passes over the socket use Chromium's own socket routing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchBrowser, openChat, sendMessage, waitForConnected, waitForLink, waitForMessage } from './support/browser.js';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { startTcpRelay } from './support/tcp-relay.js';

for (const engine of ENGINES) {
  test(`${engine.name}: a dropped signaling socket resumes with the same id, links kept, queued offers delivered`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    // Ada reaches the server only through a relay the test can take offline.
    const relay = await startTcpRelay({ host: '127.0.0.1', port: server.port });
    t.after(() => relay.close());
    const browser = await engine.launch();
    t.after(() => browser.close());

    // Ada uses the module directly, to watch her session.
    const ada = await browser.newPage();
    await ada.goto(relay.httpUrl);
    const adaId = await ada.evaluate(async (wsUrl) => {
      const { joinRoom } = await import('/js/room.js');
      const room = joinRoom(wsUrl, 'resume', { name: 'Ada' });
      window.room = room;
      window.welcomes = [];
      window.received = [];
      room.addEventListener('welcome', (e) => window.welcomes.push(e.detail));
      room.addEventListener('message', (e) => window.received.push(`${e.detail.name}: ${e.detail.text}`));
      return room.ready;
    }, relay.wsUrl);

    const grace = await browser.newPage();
    const graceId = await openChat(grace, server.httpUrl, 'resume', 'Grace');
    await waitForLink(grace, { peerId: adaId });
    await waitForConnected(grace, 1);

    // Ada's network drops (what a flaky network or a proxy timeout does): her socket is cut and
    // reconnecting fails for now.
    relay.setOffline(true);
    await ada.waitForFunction(() => window.room.signalingState === 'reconnecting');

    // Meanwhile Linus joins. The server still lists Ada (absent, may resume), so Linus offers
    // to her; the server holds that offer until she is back.
    const linus = await browser.newPage();
    await openChat(linus, server.httpUrl, 'resume', 'Linus');
    await waitForLink(linus, { peerId: graceId });

    // The link between Ada and Grace does not need the server.
    assert.equal(await ada.evaluate((id) => window.room.sendText(id, 'from Ada while away'), graceId), true);
    await waitForMessage(grace, 'from Ada while away');

    relay.setOffline(false);
    await ada.waitForFunction(() => window.welcomes.length === 2, null, { timeout: 30_000 });
    const welcome = await ada.evaluate(() => window.welcomes[1]);
    assert.equal(welcome.resumed, true);
    assert.equal(welcome.peerId, adaId);
    // The held offer arrived: Ada and Linus connect, and her link to Grace is the same one.
    await waitForLink(linus, { peerId: adaId });
    await waitForConnected(linus, 2);
    assert.equal(await ada.evaluate((id) => window.room.linkState(id), graceId), 'direct');
    await sendMessage(linus, 'hello Ada');
    await ada.waitForFunction(() => window.received.includes('Linus: hello Ada'));
    await sendMessage(grace, 'still the same link');
    await ada.waitForFunction(() => window.received.includes('Grace: still the same link'));
    assert.deepEqual(browser.pageErrors, []);
  });
}

test('an offer lost with a dropped signaling socket is made again once the session resumes', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const ada = await browser.newPage();
  const adaId = await openChat(ada, server.httpUrl, 'lost-offer', 'Ada');

  // Grace's socket goes through the test: her first offer is swallowed and the socket dropped,
  // as when a server dies with a signal it had read but not yet relayed.
  const grace = await browser.newPage();
  let swallowed = 0;
  let sockets = 0;
  await grace.routeWebSocket(/\/ws/, (page) => {
    sockets += 1;
    const upstream = page.connectToServer();
    page.onMessage((message) => {
      if (swallowed === 0 && typeof message === 'string' && message.includes('"description"')) {
        swallowed += 1;
        upstream.close();
        page.close({ code: 1011, reason: 'lost' });
        return;
      }
      upstream.send(message);
    });
  });
  const graceId = await openChat(grace, server.httpUrl, 'lost-offer', 'Grace');

  // She comes back with the same id, offers again, and the link opens.
  await waitForLink(grace, { peerId: adaId });
  await waitForLink(ada, { peerId: graceId });
  assert.equal(swallowed, 1);
  assert.ok(sockets >= 2, `Grace reconnected (${sockets} sockets)`);
  assert.equal(await grace.evaluate(() => document.body.dataset.peerId), graceId);
  await sendMessage(grace, 'made it');
  assert.equal((await waitForMessage(ada, 'made it')).from, 'Grace');
  assert.deepEqual(browser.pageErrors, []);
});

test('an offer the server could not carry (its room store away) is made again a little later', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const ada = await browser.newPage();
  const adaId = await openChat(ada, server.httpUrl, 'refused-offer', 'Ada');

  // Grace's first offer never reaches the server; she gets the refusal a server sharing rooms
  // through Redis sends while Redis is away, naming the peer the signal was for.
  const grace = await browser.newPage();
  let refused = 0;
  await grace.routeWebSocket(/\/ws/, (page) => {
    const upstream = page.connectToServer();
    page.onMessage((message) => {
      if (refused === 0 && typeof message === 'string' && message.includes('"description"')) {
        refused += 1;
        page.send(JSON.stringify({
          type: 'error',
          code: 'internal',
          message: 'the room store is unreachable; try again shortly',
          peer_id: adaId,
        }));
        return;
      }
      upstream.send(message);
    });
  });
  const started = Date.now();
  const graceId = await openChat(grace, server.httpUrl, 'refused-offer', 'Grace');

  // The link offers again after a second, on the same socket, and opens.
  await waitForLink(grace, { peerId: adaId });
  await waitForLink(ada, { peerId: graceId });
  assert.equal(refused, 1);
  assert.ok(Date.now() - started >= 1000, 'the offer was made again only after a wait');
  await sendMessage(grace, 'second time lucky');
  assert.equal((await waitForMessage(ada, 'second time lucky')).from, 'Grace');
  assert.deepEqual(browser.pageErrors, []);
});
