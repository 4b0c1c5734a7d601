/**
 * File transfer with `peer-client send` / `receive` (or another page) under a code phrase, as
 * docs/transfer.md specifies: one `transfer` data channel, SPAKE2 and key confirmation over the
 * DTLS fingerprints before anything else, a manifest, resume claims, files as binary frames between
 * `file` and `file_end` with a BLAKE3 hash per file.
 *
 * ```js
 * import { receiveFiles, sendFiles, Code } from './js/transfer.js';
 * const sent = await sendFiles({ url, files, code: Code.generate(), onStatus, onProgress });
 * ```
 *
 * @module transfer
 */

import { blake3 } from '../vendor/@noble/hashes/blake3.js';
import { bytesToHex, concatBytes } from '../vendor/@noble/hashes/utils.js';
import { Code } from './code.js';
import {
  CONFIRMATION_BYTES,
  Pake,
  PakeError,
  decodeHex,
  confirmationMac,
  sdpFingerprint,
  verifyConfirmation,
} from './pake.js';
import { PeerLink } from './peer.js';
import { SignalingClient } from './signaling.js';

export { Code, CodeError } from './code.js';

/** Label of the data channel a transfer runs on. */
export const TRANSFER_LABEL = 'transfer';
/**
 * The transfer channel both sides create under one SCTP stream id (negotiated out of band): it
 * opens as soon as the association is up, a round trip before an in-band channel would.
 */
export const TRANSFER_CHANNEL = { label: TRANSFER_LABEL, id: 0 };
/** Longest wait for the server's welcome, the channel to the sender, and each handshake message. */
export const STEP_TIMEOUT_MS = 30_000;
/** Largest file-data frame sent. */
const MAX_CHUNK_BYTES = 256 * 1024;
/** Data queued in the channel above which the sender waits. */
const SEND_HIGH_WATER = 1024 * 1024;
/** Queued data at which the sender resumes. */
const SEND_LOW_WATER = 256 * 1024;
/** Most manifest entries accepted. */
export const MAX_ENTRIES = 100_000;
/** Most bytes (UTF-8) of all offered paths together, as the native receiver counts them. */
export const MAX_PATH_BYTES_TOTAL = 16 * 1024 * 1024;
/** Most bytes of received frames waiting to be written before the transfer stops. */
const MAX_INBOX_BYTES = 256 * 1024 * 1024;
/** Most frames waiting to be handled. */
const MAX_INBOX_FRAMES = 200_000;
/** A disconnected link may come back within this time. */
const DISCONNECT_GRACE_MS = 8000;
/**
 * Longest a receiver waits for the sender's next frame while data is expected, and a sender for
 * any of its queued data to be acknowledged (for room in the channel, or for the receiver's final
 * `done`): the native client's bounds (`--idle-timeout`).
 */
export const IDLE_TIMEOUT_MS = 60_000;
/** Slowest hashing assumed of a sender that checks a resume claim, in bytes per second (as natively). */
const SLOWEST_HASH_RATE = 25_000_000;
/** How often a waiting sender looks at what the channel still holds. */
const ACK_CHECK_MS = 250;
/** How long a finished side waits for the other to close first. */
const CLOSE_WAIT_MS = 5000;
/** Largest file a Blob sink accepts: it holds the whole file in memory until it is verified. */
export const MAX_BLOB_FILE_BYTES = 2 * 1024 * 1024 * 1024;
/** Received data gathered into one write of a directory sink. */
const WRITE_BATCH_BYTES = 2 * 1024 * 1024;
/** Most peers of the room a transfer tries to connect to at once. */
const MAX_CANDIDATES = 8;
/** Generated codes tried when a number is already in use. */
const CODE_ATTEMPTS = 5;
/** Suffix of files being received. */
const PART_SUFFIX = '.part';
/** What a failed key confirmation means, as both clients say it. */
export const MISMATCH_MESSAGE = 'the code did not match, or someone is interfering with the connection';

/** A transfer that stopped; `message` is a sentence for the user. */
export class TransferError extends Error {
  /**
   * @param {string} message
   * @param {{peerKnows?: boolean, kind?: string}} [options] `peerKnows`: the other side already
   *   knows (it said so, or it is gone), so there is nobody to tell.
   */
  constructor(message, { peerKnows = false, kind = 'error' } = {}) {
    super(message);
    this.peerKnows = peerKnows;
    this.kind = kind;
  }
}

/** Control characters of a peer's text become U+FFFD, so it cannot rewrite what is shown. */
export function printable(text) {
  return String(text).replace(/\p{Cc}/gu, '\uFFFD');
}

function protocolError(what) {
  return new TransferError(`the other side broke the transfer protocol: ${what}`);
}

function gone(why) {
  return new TransferError(`the other side went away (${why}); run the same command again to resume`, {
    peerKnows: true,
    kind: 'gone',
  });
}

/**
 * Resolves when the channel's queue falls to its low-water mark; rejects once nothing it holds was
 * acknowledged (its `bufferedAmount` did not fall) for {@link IDLE_TIMEOUT_MS}.
 * @param {RTCDataChannel} channel
 */
function drained(channel) {
  return new Promise((resolve, reject) => {
    const acknowledging = acknowledgementWatch(channel);
    const check = setInterval(() => {
      if (!acknowledging()) {
        done();
        reject(
          new TransferError(
            `the receiver acknowledged nothing for ${IDLE_TIMEOUT_MS / 1000} s; stopped (send again to resume)`,
            { kind: 'timeout' },
          ),
        );
      }
    }, ACK_CHECK_MS);
    const low = () => {
      done();
      resolve();
    };
    const done = () => {
      clearInterval(check);
      channel.removeEventListener('bufferedamountlow', low);
      channel.removeEventListener('close', low);
    };
    channel.addEventListener('bufferedamountlow', low);
    // A closed channel is reported by the link (and by the next send).
    channel.addEventListener('close', low);
  });
}

/**
 * Watches a channel's `bufferedAmount`: the returned function answers, each time it is called,
 * whether some of it was acknowledged (the amount fell) within the last {@link IDLE_TIMEOUT_MS}.
 * @param {RTCDataChannel} channel
 * @returns {() => boolean}
 */
function acknowledgementWatch(channel) {
  let queued = channel.bufferedAmount;
  let progressed = Date.now();
  return () => {
    const now = channel.bufferedAmount;
    if (now < queued) progressed = Date.now();
    queued = now;
    return Date.now() - progressed <= IDLE_TIMEOUT_MS;
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new TransferError(`timed out ${what}`, { kind: 'timeout' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Checks a path offered by a sender (docs/transfer.md §8).
 * @param {unknown} path
 * @returns {string|null} why it is refused, or null when it is fine
 */
export function pathProblem(path) {
  if (typeof path !== 'string' || path === '') return 'it is empty';
  if (new TextEncoder().encode(path).length > 4096) return 'it is longer than 4096 bytes';
  if (path.startsWith('/')) return 'it is absolute';
  if (path.includes('\\')) return 'it contains a backslash';
  if (/\p{Cc}/u.test(path)) return 'it contains NUL or control characters';
  if (/^[A-Za-z]:/.test(path)) return 'it starts with a drive prefix';
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') return 'it has an empty, . or .. component';
    if (new TextEncoder().encode(part).length > 255) return 'a component is longer than 255 bytes';
  }
  return null;
}

/**
 * Checks a whole manifest: every path, unique paths, no `NAME.part` that is another entry, sizes
 * that are non-negative integers summing to `total`.
 * @param {{path: string, kind: 'file'|'dir', size: number}[]} entries
 * @param {number} total
 */
export function checkManifest(entries, total) {
  const seen = new Set();
  let sum = 0;
  for (const entry of entries) {
    const problem = pathProblem(entry.path);
    if (problem) {
      throw new TransferError(`refused the path ${JSON.stringify(printable(entry.path))} offered by the sender: ${problem}`);
    }
    if (seen.has(entry.path)) throw protocolError(`the path ${JSON.stringify(printable(entry.path))} is offered twice`);
    seen.add(entry.path);
    sum += entry.size;
  }
  for (const entry of entries) {
    if (entry.kind === 'file' && seen.has(entry.path + PART_SUFFIX)) {
      throw protocolError(`${JSON.stringify(printable(entry.path))} and its ${PART_SUFFIX} file are both offered`);
    }
  }
  if (sum !== total) throw protocolError("the offer's total does not match its entries");
}

/** Reads one control message; null when it is not a JSON object with a string `type`. */
function parseMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return null;
  }
  if (!message || typeof message !== 'object' || typeof message.type !== 'string') return null;
  return message;
}

const isCount = (n) => Number.isSafeInteger(n) && n >= 0;

/**
 * An authenticated `transfer` channel to one peer, in a room of the signaling server.
 */
export class TransferLink {
  /** @hideconstructor */
  constructor(signaling, role) {
    this.role = role;
    this._signaling = signaling;
    /** @type {PeerLink|null} The link whose transfer channel opened first. */
    this._link = null;
    /** @type {Map<string, PeerLink>} Links still being set up, by peer id. */
    this._candidates = new Map();
    /** @type {RTCDataChannel|null} */
    this.channel = null;
    this._inbox = [];
    this._inboxBytes = 0;
    this._waiter = null;
    this._failure = null;
    this._disconnectTimer = null;
    this._closed = false;
  }

  /**
   * Joins the code's room and waits for the other side, then authenticates. As the receiver it
   * fails at once when nobody waits in the room; as the sender it waits however long it takes
   * (until `signal` aborts; aborting later stops the transfer and tells the peer). A sender with `exclusive` (a generated code) fails with
   * `kind: 'in-use'` when the room is occupied.
   *
   * @param {object} options
   * @param {string} options.url WebSocket URL of the signaling server.
   * @param {Code} options.code
   * @param {'sender'|'receiver'} options.role
   * @param {boolean} [options.exclusive]
   * @param {(status: string) => void} [options.onStatus] progress of the connection, in words
   * @param {(code: Code) => void} [options.onJoined] the room is ours (sender: show the code now)
   * @param {AbortSignal} [options.signal]
   * @returns {Promise<TransferLink>}
   */
  static async open({ url, code, role, exclusive = false, onStatus = () => {}, onJoined = () => {}, signal }) {
    const signaling = new SignalingClient(url, code.room());
    const link = new TransferLink(signaling, role);
    const abort = () => {
      link.sendMessage({ type: 'error', message: 'the transfer was cancelled' });
      link._fail(new TransferError('the transfer was cancelled', { peerKnows: true, kind: 'aborted' }));
    };
    signal?.addEventListener('abort', abort, { once: true });
    // Cancelling works until the link is closed, during the transfer too.
    link._unlisten = () => signal?.removeEventListener('abort', abort);
    try {
      onStatus('joining');
      await link._connect(code, exclusive, onStatus, onJoined);
      onStatus('authenticating');
      await link._handshake(code);
      onStatus('authenticated');
      return link;
    } catch (err) {
      if (err instanceof TransferError && !err.peerKnows) {
        link.sendMessage({
          type: 'error',
          message: err.kind === 'mismatch' ? MISMATCH_MESSAGE : err.message,
        });
      }
      await link.close();
      throw err;
    }
  }

  async _connect(code, exclusive, onStatus, onJoined) {
    const signaling = this._signaling;
    const welcome = new Promise((resolve, reject) => {
      signaling.addEventListener('welcome', ({ detail }) => resolve(detail), { once: true });
      signaling.addEventListener('state', ({ detail }) => {
        if (detail.state === 'closed' && signaling.peerId === null) {
          reject(new TransferError(`the signaling server refused the connection: ${detail.reason ?? 'closed'}`));
        }
      });
    });
    const channelOpen = new Promise((resolve) => {
      this._channelOpened = resolve;
    });
    signaling.connect();
    const hello = await this._race(withTimeout(welcome, STEP_TIMEOUT_MS, 'waiting for the signaling server'));
    const peers = Array.isArray(hello.peers) ? hello.peers : [];
    const iceServers = hello.ice_servers ?? [];
    if (this.role === 'receiver' && peers.length === 0) {
      throw new TransferError(
        `nobody is sending with code ${code.nameplate}-…; check the code and that the sender is still waiting`,
        { peerKnows: true, kind: 'no-sender' },
      );
    }
    if (this.role === 'sender' && exclusive && peers.length > 0) {
      throw new TransferError(`the code number ${code.nameplate} is in use on this server`, {
        peerKnows: true,
        kind: 'in-use',
      });
    }
    onJoined(code);
    signaling.addEventListener('peer_joined', ({ detail }) => {
      if (this.role === 'sender' && !this._link) this._makeLink(detail.peer_id, iceServers);
    });
    signaling.addEventListener('signal', ({ detail }) => {
      const isOffer = detail.data?.description?.type === 'offer';
      if (!this._link && isOffer && this.role === 'sender') this._makeLink(detail.from, iceServers);
      const link = this._link ?? this._candidates.get(detail.from);
      if (link && detail.from === link.remoteId) link.handleSignal(detail.data);
    });
    signaling.addEventListener('error', ({ detail }) => {
      // A signal the server could not carry (its room store was away): negotiate again later.
      if (detail.code !== 'internal' || !detail.peer_id) return;
      const link = this._link ?? this._candidates.get(detail.peer_id);
      if (link && link.remoteId === detail.peer_id) link.signalLost();
    });
    signaling.addEventListener('peer_left', ({ detail }) => {
      // A peer that left before its channel opened: wait for the others.
      this._candidates.get(detail.peer_id)?.close();
      this._candidates.delete(detail.peer_id);
    });
    if (this.role === 'receiver') {
      // The later joiner offers, with the transfer channel in its offer, to everyone present
      // (one of them may be a sender's earlier run that the server still keeps); the first
      // transfer channel that opens is the sender's.
      for (const peerId of peers.slice(0, MAX_CANDIDATES)) this._makeLink(peerId, iceServers)?.openNegotiatedChannels();
      onStatus('connecting');
      await this._race(withTimeout(channelOpen, STEP_TIMEOUT_MS, 'connecting to the sender (no direct or relayed path was found)'));
    } else {
      onStatus('waiting');
      await this._race(channelOpen);
    }
  }

  _makeLink(peerId, iceServers) {
    if (this._candidates.has(peerId) || this._candidates.size >= MAX_CANDIDATES) return null;
    const link = new PeerLink({
      localId: this._signaling.peerId,
      remoteId: peerId,
      iceServers,
      sendSignal: (data) => this._signaling.signal(peerId, data),
      initiator: false,
      negotiatedChannels: [TRANSFER_CHANNEL],
    });
    this._candidates.set(peerId, link);
    link.addEventListener('channel-open', ({ detail }) => {
      if (detail.label !== TRANSFER_LABEL || this._link) return;
      this._link = link;
      this._candidates.delete(peerId);
      for (const other of this._candidates.values()) other.close();
      this._candidates.clear();
      this._adopt(detail.channel);
      this._channelOpened();
    });
    link.addEventListener('link-state', ({ detail }) => {
      if (link !== this._link || !this.channel) return;
      if (detail.state === 'failed' || detail.state === 'closed') this._fail(gone('the connection failed'));
      else if (detail.state === 'connecting') {
        this._disconnectTimer ??= setTimeout(() => this._fail(gone('the connection was lost')), DISCONNECT_GRACE_MS);
      } else {
        clearTimeout(this._disconnectTimer);
        this._disconnectTimer = null;
      }
    });
    return link;
  }

  _adopt(channel) {
    this.channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.bufferedAmountLowThreshold = SEND_LOW_WATER;
    channel.addEventListener('message', ({ data }) => this._push(data));
    channel.addEventListener('close', () => this._fail(gone('the channel closed')));
  }

  _push(data) {
    if (this._failure) return;
    const size = typeof data === 'string' ? data.length : data.byteLength;
    if (this._inbox.length >= MAX_INBOX_FRAMES || this._inboxBytes + size > MAX_INBOX_BYTES) {
      this._fail(new TransferError('received data arrives faster than it can be written; stopped'));
      return;
    }
    this._inbox.push(data);
    this._inboxBytes += size;
    this._wake();
  }

  _fail(err) {
    if (this._failure) return;
    this._failure = err;
    this._wake();
    this._rejectRace?.(err);
  }

  _wake() {
    const waiter = this._waiter;
    this._waiter = null;
    waiter?.();
  }

  /** Runs `promise` but rejects as soon as the link fails. */
  async _race(promise) {
    if (this._failure) throw this._failure;
    try {
      return await Promise.race([
        promise,
        new Promise((_, reject) => {
          this._rejectRace = reject;
        }),
      ]);
    } finally {
      this._rejectRace = null;
    }
  }

  /**
   * The next frame: `{message}` for a control message, `{data}` (ArrayBuffer) for file data.
   * A peer's `error` becomes a {@link TransferError}.
   * @param {number} [timeoutMs] longest wait; then a `kind: 'timeout'` error
   * @param {string} [stalled] the error's message when the wait runs out
   */
  async next(timeoutMs, stalled = "timed out waiting for the other side's key exchange") {
    const started = Date.now();
    while (this._inbox.length === 0) {
      if (this._failure) throw this._failure;
      const wait = new Promise((resolve) => {
        this._waiter = resolve;
      });
      if (timeoutMs === undefined) await wait;
      else {
        const left = timeoutMs - (Date.now() - started);
        if (left <= 0) throw new TransferError(stalled, { kind: 'timeout' });
        let timer;
        await Promise.race([wait, new Promise((r) => (timer = setTimeout(r, left)))]);
        clearTimeout(timer);
      }
    }
    const frame = this._inbox.shift();
    this._inboxBytes -= typeof frame === 'string' ? frame.length : frame.byteLength;
    if (typeof frame !== 'string') return { data: frame };
    const message = parseMessage(frame);
    if (!message) throw protocolError('unreadable control message');
    if (message.type === 'error') {
      throw new TransferError(`the other side stopped the transfer: ${printable(message.message ?? '')}`, {
        peerKnows: true,
        kind: 'peer',
      });
    }
    return { message };
  }

  /** The next control message, which must be of type `type`. */
  async expect(type, wanted, timeoutMs, stalled) {
    const frame = await this.next(timeoutMs, stalled);
    if (frame.message?.type === type) return frame.message;
    const got = frame.data ? `${frame.data.byteLength} bytes of file data` : frame.message.type;
    throw protocolError(`expected ${wanted}, got ${printable(got)}`);
  }

  /** Sends a control message (best effort once the channel is gone). */
  sendMessage(message) {
    if (this.channel?.readyState !== 'open') return false;
    try {
      this.channel.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Sends file data, waiting while more than 1 MiB is queued; a receiver that acknowledges none of
   * it for {@link IDLE_TIMEOUT_MS} ends the wait with an error.
   */
  async sendData(bytes) {
    if (this._failure) throw this._failure;
    const channel = this.channel;
    if (channel.bufferedAmount > SEND_HIGH_WATER) await this._race(drained(channel));
    try {
      channel.send(bytes);
    } catch {
      throw gone('the channel closed');
    }
  }

  /** Largest file-data frame to send: the connection's largest message, at most 256 KiB. */
  get chunkBytes() {
    const max = this._link?.pc.sctp?.maxMessageSize;
    return Math.max(1, Math.min(MAX_CHUNK_BYTES, Number.isFinite(max) && max > 0 ? max : 64 * 1024));
  }

  /** True while a frame is waiting. */
  get hasPending() {
    return this._inbox.length > 0 || this._failure !== null;
  }

  /** The DTLS fingerprints of the connection, ours and the peer's. */
  fingerprints() {
    const pc = this._link.pc;
    const local = pc.localDescription && sdpFingerprint(pc.localDescription.sdp);
    const remote = pc.remoteDescription && sdpFingerprint(pc.remoteDescription.sdp);
    if (!local || !remote) throw new TransferError('the connection has no DTLS fingerprints to confirm');
    return { local, remote };
  }

  async _handshake(code) {
    const pake = new Pake(code.text);
    this.sendMessage({ type: 'pake', message: bytesToHex(pake.message) });
    const theirs = await this.expect('pake', 'a key-exchange message', STEP_TIMEOUT_MS);
    let key;
    try {
      key = pake.finish(decodeHex(theirs.message) ?? new Uint8Array(0));
    } catch (err) {
      if (err instanceof PakeError) throw new TransferError(err.message);
      throw err;
    }
    const fingerprints = this.fingerprints();
    const mac = confirmationMac(key, this.role, fingerprints.local, fingerprints.remote);
    this.sendMessage({ type: 'confirm', mac: bytesToHex(mac) });
    const confirm = await this.expect('confirm', 'a key confirmation', STEP_TIMEOUT_MS);
    const peerMac = decodeHex(confirm.mac);
    const peerRole = this.role === 'sender' ? 'receiver' : 'sender';
    if (!peerMac || peerMac.length !== CONFIRMATION_BYTES || !verifyConfirmation(key, peerRole, fingerprints, peerMac)) {
      const consequence = this.role === 'sender' ? 'nothing was sent' : 'no file was written';
      throw new TransferError(`${MISMATCH_MESSAGE}; ${consequence}`, { kind: 'mismatch' });
    }
  }

  /** Tells the peer why we stop (best effort). */
  fail(err) {
    if (err instanceof TransferError && err.peerKnows) return;
    this.sendMessage({ type: 'error', message: err instanceof TransferError ? err.message : String(err) });
  }

  /** Waits (bounded) until what was sent is delivered or the peer closes, then leaves. */
  async close({ afterPeer = false } = {}) {
    if (this._closed) return;
    this._closed = true;
    this._unlisten?.();
    const deadline = Date.now() + CLOSE_WAIT_MS;
    while (this.channel?.readyState === 'open' && Date.now() < deadline) {
      if (!afterPeer && this.channel.bufferedAmount === 0) break;
      if (afterPeer && this._failure) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    clearTimeout(this._disconnectTimer);
    this._link?.close();
    for (const other of this._candidates.values()) other.close();
    this._candidates.clear();
    this._signaling.close();
    this._fail(new TransferError('closed', { peerKnows: true, kind: 'closed' }));
  }
}

/**
 * Progress of a transfer: total and done bytes, the current file, a rate and an ETA.
 */
export class Progress {
  /** @param {(state: object) => void} onProgress */
  constructor(onProgress) {
    this._on = onProgress;
    this.total = 0;
    this.done = 0;
    this.file = '';
    this._started = 0;
    this._counted = 0;
    this._last = 0;
  }

  begin(total) {
    this.total = total;
    this._started = performance.now();
    this._emit(true);
  }

  setFile(path) {
    this.file = path;
    this._emit(true);
  }

  /** Bytes that need not be moved (already held). */
  skip(n) {
    this.done += n;
    this._emit(false);
  }

  advance(n) {
    this.done += n;
    this._counted += n;
    this._emit(false);
  }

  end() {
    this._emit(true);
  }

  _emit(force) {
    const now = performance.now();
    if (!force && now - this._last < 200 && this.done < this.total) return;
    this._last = now;
    const seconds = Math.max(0.001, (now - this._started) / 1000);
    const rate = this._counted / seconds;
    const left = this.total - this.done;
    this._on({
      total: this.total,
      done: this.done,
      file: this.file,
      bytesPerSecond: rate,
      etaSeconds: rate > 0 ? left / rate : null,
    });
  }
}

/** An incremental BLAKE3 hash. */
function hasher() {
  return blake3.create();
}

/** Feeds the first `length` bytes of a Blob to `hash`, a chunk at a time. */
async function hashBlob(blob, length, hash) {
  for (let at = 0; at < length; at += MAX_CHUNK_BYTES) {
    hash.update(new Uint8Array(await blob.slice(at, Math.min(length, at + MAX_CHUNK_BYTES)).arrayBuffer()));
  }
}

/**
 * Sends `files` under `code` (docs/transfer.md §4–7). With a generated code (`codeFixed` false)
 * an occupied number is replaced by a new code, shown through `onCode`.
 *
 * @param {object} options
 * @param {string} options.url
 * @param {{path: string, file: File}[]} options.files relative `/`-separated paths and their contents
 * @param {string[]} [options.dirs] folders to create on the receiver (parents before children);
 *   the parents of every file are added
 * @param {Code} [options.code] a chosen code; a generated one otherwise
 * @param {(code: Code) => void} [options.onCode] the code to tell the receiver
 * @param {(status: string) => void} [options.onStatus]
 * @param {(progress: object) => void} [options.onProgress]
 * @param {AbortSignal} [options.signal]
 * @returns {Promise<{files: number, dirs: number, totalBytes: number, sentBytes: number, skippedBytes: number, seconds: number}>}
 */
export async function sendFiles({ url, files, dirs = [], code, onCode = () => {}, onStatus = () => {}, onProgress = () => {}, signal }) {
  const folders = new Set(dirs);
  for (const { path } of files) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i += 1) folders.add(parts.slice(0, i).join('/'));
  }
  // Sorted, a folder comes before everything in it.
  const entries = [...folders].sort().map((path) => ({ path, kind: 'dir', size: 0 }));
  for (const { path, file } of files) entries.push({ path, kind: 'file', size: file.size });
  if (entries.length > MAX_ENTRIES) throw new TransferError(`at most ${MAX_ENTRIES} files and folders can be sent at once`);
  const total = entries.reduce((sum, e) => sum + e.size, 0);
  checkManifest(entries, total);
  let link;
  for (let attempt = 1; ; attempt += 1) {
    const tried = code ?? Code.generate();
    try {
      link = await TransferLink.open({
        url,
        code: tried,
        role: 'sender',
        exclusive: !code,
        onStatus,
        onJoined: onCode,
        signal,
      });
      break;
    } catch (err) {
      if (err.kind === 'in-use' && !code && attempt < CODE_ATTEMPTS) continue;
      throw err;
    }
  }
  try {
    const summary = await runSend(link, files, entries, total, onStatus, onProgress);
    await link.close();
    return summary;
  } catch (err) {
    link.fail(err);
    await link.close();
    throw err;
  }
}

async function runSend(link, files, entries, total, onStatus, onProgress) {
  link.sendMessage({ type: 'offer', entries: entries.length, bytes: total });
  for (const entry of entries) link.sendMessage({ type: 'entry', ...entry });
  onStatus('offered');
  const resume = new Map();
  for (;;) {
    const { message, data } = await link.next();
    if (message?.type === 'accept') break;
    if (message?.type === 'decline') {
      throw new TransferError('the receiver declined the transfer', { peerKnows: true, kind: 'declined' });
    }
    if (message?.type === 'resume') {
      const entry = entries[message.index];
      if (!isCount(message.index) || !entry || !isCount(message.offset) || message.offset > entry.size) {
        throw protocolError(`resume offset ${message.offset} for entry ${message.index} does not fit the manifest`);
      }
      resume.set(message.index, { offset: message.offset, blake3: String(message.blake3) });
      continue;
    }
    throw protocolError(`expected accept or decline, got ${data ? 'file data' : printable(message.type)}`);
  }
  onStatus('sending');
  const started = performance.now();
  const progress = new Progress(onProgress);
  progress.begin(total);
  const chunk = link.chunkBytes;
  let sentBytes = 0;
  let skippedBytes = 0;
  const firstFile = entries.length - files.length;
  for (const [i, { path, file }] of files.entries()) {
    const index = firstFile + i;
    progress.setFile(path);
    let hash = hasher();
    let offset = 0;
    const claim = resume.get(index);
    if (claim) {
      await hashBlob(file, claim.offset, hash);
      if (bytesToHex(hash.digest()) === claim.blake3) offset = claim.offset;
      hash = hasher();
      await hashBlob(file, offset, hash);
    }
    link.sendMessage({ type: 'file', index, offset });
    skippedBytes += offset;
    progress.skip(offset);
    for (let at = offset; at < file.size; at += chunk) {
      const bytes = new Uint8Array(await file.slice(at, Math.min(file.size, at + chunk)).arrayBuffer());
      hash.update(bytes);
      await link.sendData(bytes);
      sentBytes += bytes.length;
      progress.advance(bytes.length);
      // The receiver may have stopped (disk full, ...): hear it now.
      if (link.hasPending) {
        const frame = await link.next();
        throw protocolError(`expected nothing while data flows, got ${frame.data ? 'file data' : printable(frame.message.type)}`);
      }
    }
    link.sendMessage({ type: 'file_end', index, blake3: bytesToHex(hash.digest()) });
  }
  link.sendMessage({ type: 'done' });
  onStatus('confirming');
  await receiverDone(link);
  progress.end();
  onStatus('done');
  return {
    files: files.length,
    dirs: entries.length - files.length,
    totalBytes: total,
    sentBytes,
    skippedBytes,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Waits for the receiver's `done`. Up to 1 MiB may still be on its way when the last chunk is queued
 * (minutes of data on a slow lossy link), so the wait is bounded by {@link IDLE_TIMEOUT_MS} from the
 * last acknowledgement (the channel's `bufferedAmount` falling), as the native sender bounds it.
 * @param {TransferLink} link
 */
async function receiverDone(link) {
  const acknowledging = acknowledgementWatch(link.channel);
  for (;;) {
    try {
      return await link.expect('done', "the receiver's done", ACK_CHECK_MS);
    } catch (err) {
      if (!(err instanceof TransferError) || err.kind !== 'timeout') throw err;
    }
    if (!acknowledging()) {
      throw new TransferError('timed out waiting for the receiver to confirm the files', { kind: 'timeout' });
    }
  }
}

/**
 * Where received files go./**
 * Where received files go. Both kinds write each file as it arrives and verify it before it is
 * presented: a directory on disk (File System Access API), or blobs offered as downloads.
 * @typedef {object} Sink
 * @property {(entries: object[]) => Promise<void>} prepare checks targets, creates directories
 * @property {(entry: object) => Promise<{offset: number, blake3: string}|null>} [held] what an
 *   earlier, interrupted run left of a file (a resume claim)
 * @property {(path: string, offset: number, hash: object) => Promise<FileWriter>} open starts a file
 *   at `offset` (feeding the bytes already held to `hash`)
 */

/**
 * One file being written.
 * @typedef {object} FileWriter
 * @property {(bytes: Uint8Array) => Promise<void>} write
 * @property {() => Promise<void>} finish the hash matched: the file gets its name
 * @property {() => Promise<void>} abort the hash did not match (or worse): what arrived is removed
 * @property {() => Promise<void>} keep the other side went away: what arrived stays for a resume
 */

/**
 * Writes into a directory handle (from `showDirectoryPicker()` or the origin-private file system):
 * each file goes to `NAME.part`, streamed, and gets its name only once its hash matched. An
 * existing file is never replaced.
 * @param {FileSystemDirectoryHandle} root
 * @returns {Sink}
 */
export function directorySink(root) {
  const dirOf = async (parts, create) => {
    let dir = root;
    for (const part of parts) dir = await dir.getDirectoryHandle(part, { create });
    return dir;
  };
  const exists = async (dir, name) => {
    try {
      await dir.getFileHandle(name);
      return true;
    } catch {
      try {
        await dir.getDirectoryHandle(name);
        return true;
      } catch {
        return false;
      }
    }
  };
  return {
    kind: 'directory',
    async prepare(entries) {
      for (const entry of entries) {
        const parts = entry.path.split('/');
        const name = parts.pop();
        let dir;
        try {
          dir = await dirOf(parts, false);
        } catch {
          continue; // the parent does not exist yet, so neither does the entry
        }
        if (entry.kind === 'file' && (await exists(dir, name))) {
          throw new TransferError(`${entry.path} already exists; nothing was changed (choose another folder)`);
        }
        if (entry.kind === 'dir') {
          try {
            await dir.getFileHandle(name);
            throw new TransferError(`${entry.path} already exists and is not a folder; nothing was changed`);
          } catch (err) {
            if (err instanceof TransferError) throw err;
          }
        }
      }
      for (const entry of entries) if (entry.kind === 'dir') await dirOf(entry.path.split('/'), true);
    },
    async held(entry) {
      if (entry.kind !== 'file' || entry.size === 0) return null;
      const parts = entry.path.split('/');
      const name = parts.pop();
      let file;
      try {
        file = await (await (await dirOf(parts, false)).getFileHandle(name + PART_SUFFIX)).getFile();
      } catch {
        return null;
      }
      if (file.size === 0 || file.size > entry.size) return null;
      const hash = hasher();
      await hashBlob(file, file.size, hash);
      return { offset: file.size, blake3: bytesToHex(hash.digest()) };
    },
    async open(path, offset, hash) {
      const parts = path.split('/');
      const name = parts.pop();
      const dir = await dirOf(parts, true);
      const partName = name + PART_SUFFIX;
      const handle = await dir.getFileHandle(partName, { create: true });
      const writable = await handle.createWritable({ keepExistingData: offset > 0 });
      if (offset > 0) {
        await hashBlob(await handle.getFile(), offset, hash);
        await writable.truncate(offset);
        await writable.seek(offset);
      }
      // Frames are small (64–256 KiB); each write to the file system is a round trip to the
      // browser process, so they are gathered into writes of about WRITE_BATCH_BYTES.
      let batch = [];
      let batched = 0;
      const flush = async () => {
        if (batched === 0) return;
        const joined = batch.length === 1 ? batch[0] : concatBytes(...batch);
        batch = [];
        batched = 0;
        await writable.write(joined);
      };
      return {
        async write(bytes) {
          batch.push(bytes);
          batched += bytes.length;
          if (batched >= WRITE_BATCH_BYTES) await flush();
        },
        /** Keeps what arrived as `NAME.part`, for a later resume. */
        async keep() {
          await flush().catch(() => {});
          await writable.close().catch(() => {});
        },
        async finish() {
          await flush();
          await writable.close();
          if (typeof handle.move === 'function') await handle.move(name);
          else {
            // Without move(): copy under the final name, then drop the part file.
            const target = await dir.getFileHandle(name, { create: true });
            const out = await target.createWritable();
            await out.write(await handle.getFile());
            await out.close();
            await dir.removeEntry(partName);
          }
        },
        async abort() {
          await writable.abort().catch(() => {});
          await dir.removeEntry(partName).catch(() => {});
        },
      };
    },
  };
}

/**
 * Keeps each file as a Blob in memory and hands it over (as a download) once verified; for
 * browsers without the File System Access API. Memory grows with the file sizes.
 * @param {(path: string, blob: Blob) => void} onFile
 * @returns {Sink}
 */
export function blobSink(onFile) {
  return {
    kind: 'blob',
    async prepare(entries) {
      const largest = entries.reduce((max, e) => Math.max(max, e.size), 0);
      if (largest > MAX_BLOB_FILE_BYTES) {
        throw new TransferError(
          `a file of ${largest} bytes is too large to hold in the browser's memory (at most ${MAX_BLOB_FILE_BYTES}); ` +
            'save into a folder instead; nothing was written',
        );
      }
    },
    async open(path) {
      let parts = [];
      return {
        async write(bytes) {
          parts.push(bytes);
        },
        async finish() {
          onFile(path, new Blob(parts, { type: 'application/octet-stream' }));
          parts = [];
        },
        async abort() {
          parts = [];
        },
        async keep() {
          parts = [];
        },
      };
    },
  };
}

/**
 * An offer read from the sender, waiting for a decision.
 */
export class IncomingOffer {
  /** @hideconstructor */
  constructor(link, entries, total) {
    this._link = link;
    /** @readonly @type {{path: string, kind: 'file'|'dir', size: number}[]} */
    this.entries = entries;
    /** @readonly Total bytes. */
    this.totalBytes = total;
    /** @readonly */
    this.files = entries.filter((e) => e.kind === 'file').length;
    /** @readonly */
    this.dirs = entries.length - this.files;
  }

  /** Says no; nothing is written. */
  async decline() {
    this._link.sendMessage({ type: 'decline' });
    await this._link.close({ afterPeer: true });
  }

  /**
   * Accepts and receives every file into `sink`.
   * @param {Sink} sink
   * @param {{onStatus?: Function, onProgress?: Function}} [handlers]
   * @returns {Promise<{files: number, totalBytes: number, receivedBytes: number, seconds: number}>}
   */
  async accept(sink, { onStatus = () => {}, onProgress = () => {} } = {}) {
    try {
      const summary = await runReceive(this._link, this.entries, this.totalBytes, sink, onStatus, onProgress);
      await this._link.close({ afterPeer: true });
      return summary;
    } catch (err) {
      this._link.fail(err);
      await this._link.close();
      throw err;
    }
  }
}

/**
 * Connects to the sender of `code`, authenticates, and reads its offer.
 * @param {{url: string, code: Code, onStatus?: Function, signal?: AbortSignal}} options
 * @returns {Promise<IncomingOffer>}
 */
export async function receiveOffer({ url, code, onStatus = () => {}, signal }) {
  const link = await TransferLink.open({ url, code, role: 'receiver', onStatus, signal });
  try {
    const offer = await link.expect('offer', 'an offer');
    if (!isCount(offer.entries) || !isCount(offer.bytes)) throw protocolError('the offer is malformed');
    if (offer.entries > MAX_ENTRIES) {
      throw protocolError(`the offer has ${offer.entries} entries, at most ${MAX_ENTRIES} are accepted`);
    }
    const entries = [];
    const encoder = new TextEncoder();
    let pathBytes = 0;
    for (let i = 0; i < offer.entries; i += 1) {
      const entry = await link.expect('entry', 'a manifest entry');
      if (typeof entry.path !== 'string' || (entry.kind !== 'file' && entry.kind !== 'dir') || !isCount(entry.size)) {
        throw protocolError('a manifest entry is malformed');
      }
      pathBytes += encoder.encode(entry.path).length;
      if (pathBytes > MAX_PATH_BYTES_TOTAL) {
        throw protocolError(`the manifest's paths take more than ${MAX_PATH_BYTES_TOTAL / (1024 * 1024)} MiB together`);
      }
      if (entry.kind === 'dir' && entry.size !== 0) throw protocolError(`directory ${JSON.stringify(printable(entry.path))} has a size`);
      entries.push({ path: entry.path, kind: entry.kind, size: entry.size });
    }
    checkManifest(entries, offer.bytes);
    return new IncomingOffer(link, entries, offer.bytes);
  } catch (err) {
    link.fail(err);
    await link.close();
    throw err;
  }
}

/** What a receiver says when the sender sends nothing while data is expected. */
const senderSilent = `the sender sent nothing for ${IDLE_TIMEOUT_MS / 1000} s; stopped waiting`;

async function runReceive(link, entries, total, sink, onStatus, onProgress) {
  await sink.prepare(entries);
  const claims = new Map();
  for (const [index, entry] of entries.entries()) {
    const held = await sink.held?.(entry);
    if (!held) continue;
    claims.set(index, held.offset);
    link.sendMessage({ type: 'resume', index, ...held });
  }
  link.sendMessage({ type: 'accept' });
  onStatus('receiving');
  const started = performance.now();
  const progress = new Progress(onProgress);
  progress.begin(total);
  let receivedBytes = 0;
  let skippedBytes = 0;
  for (const [index, entry] of entries.entries()) {
    if (entry.kind !== 'file') continue;
    progress.setFile(entry.path);
    const claimed = claims.get(index) ?? 0;
    // The sender hashes its own copy of the bytes we claimed before it answers.
    const hashing = (claimed / SLOWEST_HASH_RATE) * 1000;
    const start = await link.expect('file', `the start of file ${index}`, IDLE_TIMEOUT_MS + hashing, senderSilent);
    if (start.index !== index) throw protocolError(`expected the start of file ${index}, got file ${start.index}`);
    if (start.offset !== 0 && start.offset !== claimed) {
      throw protocolError(`file ${index} starts at ${start.offset}, but ${claimed} bytes were held`);
    }
    const hash = hasher();
    const out = await sink.open(entry.path, start.offset, hash);
    progress.skip(start.offset);
    skippedBytes += start.offset;
    let remaining = entry.size - start.offset;
    try {
      while (remaining > 0) {
        const frame = await link.next(IDLE_TIMEOUT_MS, senderSilent);
        if (!frame.data) throw protocolError(`expected file data, got ${printable(frame.message.type)}`);
        const bytes = new Uint8Array(frame.data);
        if (bytes.length > remaining) throw protocolError(`more data than the size offered for ${JSON.stringify(printable(entry.path))}`);
        hash.update(bytes);
        await out.write(bytes);
        remaining -= bytes.length;
        receivedBytes += bytes.length;
        progress.advance(bytes.length);
      }
      const end = await link.expect('file_end', `the end of file ${index}`, IDLE_TIMEOUT_MS, senderSilent);
      if (end.index !== index) throw protocolError(`expected the end of file ${index}, got file ${end.index}`);
      if (bytesToHex(hash.digest()) !== end.blake3) {
        throw new TransferError(
          `${entry.path}: the received data does not match the sender's BLAKE3 hash; the partial file was removed`,
          { kind: 'hash' },
        );
      }
    } catch (err) {
      // What arrived intact stays for a resume when the other side went away or fell silent;
      // anything else is dropped.
      if (err.kind === 'gone' || err.kind === 'timeout') await out.keep();
      else await out.abort();
      throw err;
    }
    await out.finish();
  }
  await link.expect('done', 'done', IDLE_TIMEOUT_MS, senderSilent);
  link.sendMessage({ type: 'done' });
  progress.end();
  onStatus('done');
  return { files: entries.filter((e) => e.kind === 'file').length, totalBytes: total, receivedBytes, skippedBytes, seconds: (performance.now() - started) / 1000 };
}
