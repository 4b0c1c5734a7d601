/**
 * Several receivers, one code: a swarm (docs/swarm.md). The sender offers files under one code to
 * every receiver that proves it; receivers fetch the pieces from whichever peer has them and pass on
 * what they hold, so the sender uploads the files about once however many receive them. A page can
 * be a receiver (with native receivers and other pages) or the sender.
 *
 * ```js
 * const offer = await joinSwarm({ url, code: Code.parse('7-crossword-banana') });
 * const got = await offer.accept(downloadSink(onFile), { onProgress });
 *
 * const sent = await sendToSwarm({ url, files, receivers: 3, onCode: (code) => show(code.text) });
 * ```
 *
 * @module swarm
 */

import { Code } from './code.js';
import { MAX_PEERS, SwarmNode } from './swarm-node.js';
import { makeOffer } from './swarm-offer.js';
import { CODE_ATTEMPTS } from './transfer-limits.js';
import { TransferError } from './transfer-error.js';
import { manifestOf } from './transfer-send.js';

export { MAX_PEERS } from './swarm-node.js';

/**
 * A swarm's offer read from its sender, waiting for a decision; the page stays linked to the swarm
 * meanwhile.
 */
export class SwarmOffer {
  /** @hideconstructor */
  constructor(node, offer) {
    this._node = node;
    /** @readonly @type {{path: string, kind: 'file'|'dir', size: number}[]} */
    this.entries = offer.entries;
    /** @readonly */
    this.totalBytes = offer.totalBytes;
    /** @readonly */
    this.files = offer.entries.filter((e) => e.kind === 'file').length;
    /** @readonly */
    this.dirs = offer.entries.length - this.files;
  }

  /** Says no to every peer; nothing is written. */
  async decline() {
    this._node.tellAll({ type: 'decline' });
    await this._node.close();
  }

  /**
   * Accepts: fetches every piece, hands each file to `sink` once all its pieces are in, and stays
   * while a connected peer still lacks pieces.
   * @param {Sink} sink
   * @param {{onStatus?: Function, onProgress?: Function}} [handlers]
   * @returns {Promise<{files: number, totalBytes: number, receivedBytes: number, heldBytes: number, uploadedBytes: number, seconds: number}>}
   */
  accept(sink, { onStatus = () => {}, onProgress = () => {} } = {}) {
    return this._node.receive(sink, onStatus, onProgress);
  }
}

/**
 * Joins the swarm of `code` as a receiver and reads its sender's offer.
 * @param {object} options
 * @param {string} options.url WebSocket URL of the signaling server
 * @param {Code} options.code
 * @param {(status: string, detail?: object) => void} [options.onStatus]
 * @param {(peer: string, news: object) => void} [options.onPeer] news of each peer
 * @param {AbortSignal} [options.signal] aborting stops the transfer and tells the peers
 * @returns {Promise<SwarmOffer>}
 */
export async function joinSwarm({ url, code, onStatus = () => {}, onPeer = () => {}, signal }) {
  const node = new SwarmNode({ url, code, role: 'receiver', onStatus, onPeer, signal });
  try {
    return new SwarmOffer(node, await node.start());
  } catch (err) {
    await node.close();
    throw err;
  }
}

/**
 * Offers `files` to a swarm of `receivers` under `code` (a generated one by default, replaced when
 * its number is in use) and serves every receiver that proves it, until `receivers` of them hold
 * every file and no connected receiver lacks any.
 *
 * @param {object} options
 * @param {string} options.url
 * @param {{path: string, file: File}[]} options.files
 * @param {string[]} [options.dirs] empty folders to create
 * @param {number} options.receivers 1 to {@link MAX_PEERS}
 * @param {Code} [options.code]
 * @param {(code: Code) => void} [options.onCode] the code to tell the receivers
 * @param {(status: string, detail?: object) => void} [options.onStatus]
 * @param {(peer: string, news: object) => void} [options.onPeer] news of each receiver
 * @param {(progress: object) => void} [options.onProgress] the bytes receivers hold, of all they need
 * @param {AbortSignal} [options.signal]
 * @returns {Promise<{files: number, dirs: number, receivers: number, totalBytes: number, uploadedBytes: number, seconds: number}>}
 */
export async function sendToSwarm({ url, files, dirs = [], receivers, code, onCode = () => {}, onStatus = () => {}, onPeer = () => {}, onProgress = () => {}, signal }) {
  if (!Number.isSafeInteger(receivers) || receivers < 1 || receivers > MAX_PEERS) {
    throw new TransferError(`a swarm has 1 to ${MAX_PEERS} receivers, not ${receivers}`);
  }
  const { entries, total } = manifestOf(files, dirs);
  const firstFile = entries.length - files.length;
  const byEntry = new Map(files.map(({ file }, i) => [firstFile + i, file]));
  onStatus('hashing', { done: 0, total });
  const content = await makeOffer(entries, byEntry, (done) => {
    if (signal?.aborted) throw new TransferError('the transfer was cancelled', { kind: 'aborted' });
    onStatus('hashing', { done, total });
  });
  for (let attempt = 1; ; attempt += 1) {
    const tried = code ?? Code.generate();
    const node = new SwarmNode({ url, code: tried, role: 'sender', exclusive: !code, content, files: byEntry, receivers, onStatus, onPeer, signal });
    try {
      await node.start();
    } catch (err) {
      await node.close();
      if (err.kind === 'in-use' && !code && attempt < CODE_ATTEMPTS) continue;
      throw err;
    }
    onCode(tried);
    return node.send(onProgress);
  }
}
