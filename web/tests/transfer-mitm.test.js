// A signaling server in the middle, in the browser: the page is sent to a rogue server whose room a
// relay page bridges to the honest server's, with WebRTC links of its own (so other DTLS
// fingerprints), relaying every transfer message unchanged. The page's own key confirmation must
// refuse (its own words), and nothing is saved.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient, tempDir } from './support/transfer.js';

/** Runs in the relay page: joins both rooms and relays the `transfer` channel both ways. */
async function bridge({ honestWs, rogueWs, code }) {
  const { SignalingClient } = await import('/js/signaling.js');
  const { PeerLink } = await import('/js/peer.js');
  const { Code, TRANSFER_CHANNEL, TRANSFER_LABEL } = await import('/js/transfer.js');
  const room = Code.parse(code).room();
  const join = (url) =>
    new Promise((resolve) => {
      const client = new SignalingClient(url, room);
      client.addEventListener('welcome', ({ detail }) => resolve({ client, peers: detail.peers }), { once: true });
      client.connect();
    });
  const link = (client, remoteId) => {
    const peer = new PeerLink({
      localId: client.peerId,
      remoteId,
      iceServers: [],
      sendSignal: (data) => client.signal(remoteId, data),
      initiator: false,
      negotiatedChannels: [TRANSFER_CHANNEL],
    });
    client.addEventListener('signal', ({ detail }) => {
      if (detail.from === remoteId) peer.handleSignal(detail.data);
    });
    return peer;
  };
  // Each side's channel, once open, and what arrived on the other before it opened.
  const ends = { sender: null, receiver: null };
  const waiting = { sender: [], receiver: [] };
  const pipe = (from, to) => (channel) => {
    channel.binaryType = 'arraybuffer';
    ends[from] = channel;
    for (const data of waiting[to]) channel.send(data);
    waiting[to] = [];
    channel.addEventListener('message', ({ data }) => {
      if (ends[to]?.readyState === 'open') ends[to].send(data);
      else waiting[from].push(data);
    });
  };
  const toSender = await join(honestWs);
  const toReceiver = await join(rogueWs);
  // Toward the sender we act as a receiver: offer the transfer channel.
  const up = link(toSender.client, toSender.peers[0]);
  up.addEventListener('channel-open', ({ detail }) => {
    if (detail.label === TRANSFER_LABEL) pipe('sender', 'receiver')(detail.channel);
  });
  up.openNegotiatedChannels();
  // Toward the receiver we act as the sender: it joins later and offers.
  let down = null;
  toReceiver.client.addEventListener('peer_joined', ({ detail }) => {
    if (down) return;
    down = link(toReceiver.client, detail.peer_id);
    down.addEventListener('channel-open', ({ detail: open }) => {
      if (open.label === TRANSFER_LABEL) pipe('receiver', 'sender')(open.channel);
    });
  });
}

for (const engine of ENGINES) {
  test(`${engine.name}: a signaling server in the middle is refused by the page itself; nothing is saved`, { timeout: 120_000 }, async (t) => {
    const honest = await startSignalingServer();
    t.after(() => honest.child.kill());
    const rogue = await startSignalingServer();
    t.after(() => rogue.child.kill());
    const dir = tempDir(t);
    const file = randomFile(dir, 'secret.bin', 256 * 1024);
    const code = '47-apple-tiger';
    const sender = runPeerClient('peer-client send', ['send', file, '--server', honest.wsUrl, '--code', code]);
    t.after(() => sender.kill());
    await sender.waitForLine('Waiting for the receiver');

    const browser = await engine.launch();
    t.after(() => browser.close());
    // The attacker knows the code's number (hence the room), not its words.
    const relay = await browser.newPage();
    await relay.goto(`${honest.httpUrl}transfer.html`);
    await relay.evaluate(bridge, { honestWs: honest.wsUrl, rogueWs: rogue.wsUrl, code: '47-wrong-words' });

    const page = await browser.newPage();
    let downloads = 0;
    page.on('download', () => {
      downloads += 1;
    });
    await page.goto(`${rogue.httpUrl}#code=${code}`);
    await page.waitForSelector('#transfer-error', { state: 'visible', timeout: 60_000 });
    assert.equal(
      await page.textContent('#transfer-error'),
      'the code did not match, or someone is interfering with the connection; no file was written',
    );
    assert.equal(await page.isVisible('#offer'), false);
    assert.equal(downloads, 0);
    const status = await exited(sender);
    assert.notEqual(status.code, 0);
    assert.match(sender.log(), /someone is interfering with the connection; nothing was sent/);
    assert.deepEqual(browser.pageErrors, []);
  });
}
