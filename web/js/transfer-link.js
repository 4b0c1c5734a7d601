/**
 * The authenticated `transfer` channel: joins the code's room, connects to the other side,
 * runs SPAKE2 and key confirmation over the DTLS fingerprints, then carries control messages
 * and file data with bounded queues (docs/transfer.md §3–5).
 *
 * @module transfer-link
 */

import { bytesToHex } from '../vendor/@noble/hashes/utils.js';
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
import {
  ACK_CHECK_MS,
  CLOSE_WAIT_MS,
  DISCONNECT_GRACE_MS,
  IDLE_TIMEOUT_MS,
  MAX_CANDIDATES,
  MAX_CHUNK_BYTES,
  MAX_INBOX_BYTES,
  MAX_INBOX_FRAMES,
  MISMATCH_MESSAGE,
  SEND_HIGH_WATER,
  SEND_LOW_WATER,
  STEP_TIMEOUT_MS,
  TRANSFER_CHANNEL,
  TRANSFER_LABEL,
} from './transfer-limits.js';
import { SendWindow } from './send-window.js';
import { TransferError, gone, peerKnows, printable, protocolError } from './transfer-error.js';

/**
 * Resolves when the channel's queue falls to its low-water mark (or it closes); rejects once
 * nothing it holds was acknowledged (its `bufferedAmount` did not fall) for {@link IDLE_TIMEOUT_MS}.
 * @param {RTCDataChannel} channel its `bufferedAmountLowThreshold` set
 */
export function drained(channel) {
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
 * Waits, at most {@link CLOSE_WAIT_MS} and while `channel` is open, until what it holds went out;
 * with `peerStopped`, until that says the peer stopped too (or the peer closes). A peer that was
 * told why this side stops needs the second: a page cannot tell when what it sent arrived
 * (`bufferedAmount` is 0 once the browser's SCTP stack holds the data), and closing the connection
 * sooner lost the message in Firefox.
 * @param {RTCDataChannel|null} channel
 * @param {(() => boolean)|null} [peerStopped]
 */
export async function beforeClosing(channel, peerStopped = null) {
  const deadline = Date.now() + CLOSE_WAIT_MS;
  while (channel?.readyState === 'open' && Date.now() < deadline) {
    if (peerStopped ? peerStopped() : channel.bufferedAmount === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Watches a channel's `bufferedAmount`: the returned function answers, each time it is called,
 * whether some of it was acknowledged (the amount fell) within the last {@link IDLE_TIMEOUT_MS}.
 * @param {RTCDataChannel} channel
 * @returns {() => boolean}
 */
export function acknowledgementWatch(channel) {
  let queued = channel.bufferedAmount;
  let progressed = Date.now();
  return () => {
    const now = channel.bufferedAmount;
    if (now < queued) progressed = Date.now();
    queued = now;
    return Date.now() - progressed <= IDLE_TIMEOUT_MS;
  };
}

/**
 * The DTLS fingerprints of `pc`, ours and the peer's, as key confirmation binds them.
 * @param {RTCPeerConnection} pc
 * @returns {{local: string, remote: string}}
 */
export function connectionFingerprints(pc) {
  const local = pc.localDescription && sdpFingerprint(pc.localDescription.sdp);
  const remote = pc.remoteDescription && sdpFingerprint(pc.remoteDescription.sdp);
  if (!local || !remote) throw new TransferError('the connection has no DTLS fingerprints to confirm');
  return { local, remote };
}

/**
 * Largest file-data frame to send over `pc`: its largest message (64 KiB when it does not say), at
 * most {@link MAX_CHUNK_BYTES}.
 * @param {RTCPeerConnection|undefined} pc
 */
export function chunkBytesOf(pc) {
  const max = pc?.sctp?.maxMessageSize;
  return Math.max(1, Math.min(MAX_CHUNK_BYTES, Number.isFinite(max) && max > 0 ? max : 64 * 1024));
}

/**
 * The server's first welcome to `signaling` (call before `connect()`); rejects when the server
 * refuses the connection.
 * @param {SignalingClient} signaling
 * @returns {Promise<object>}
 */
export function welcomed(signaling) {
  return new Promise((resolve, reject) => {
    signaling.addEventListener('welcome', ({ detail }) => resolve(detail), { once: true });
    signaling.addEventListener('state', ({ detail }) => {
      if (detail.state === 'closed' && signaling.peerId === null) {
        reject(new TransferError(`the signaling server refused the connection: ${detail.reason ?? 'closed'}`));
      }
    });
  });
}

/** `promise`, or a `kind: 'timeout'` error saying "timed out `what`" after `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new TransferError(`timed out ${what}`, { kind: 'timeout' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Reads one control message; null when it is not a JSON object with a string `type`. */
export function parseMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return null;
  }
  if (!message || typeof message !== 'object' || typeof message.type !== 'string') return null;
  return message;
}

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
    /** @type {SendWindow|null} The receiver's window, once it announced one. */
    this._window = null;
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
      if (!peerKnows(err)) {
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
    const welcome = welcomed(signaling);
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
    // A receiver's report of what it took is heard at once, whatever else waits in the inbox.
    try {
      if (this._window && typeof data === 'string' && this._window.hears(data)) return;
    } catch (err) {
      this._fail(err);
      return;
    }
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
    await this._window?.take(bytes.length, (waiting) => this._race(waiting));
    const channel = this.channel;
    if (channel.bufferedAmount > SEND_HIGH_WATER) await this._race(drained(channel));
    try {
      channel.send(bytes);
    } catch {
      throw gone('the channel closed');
    }
  }

  /** Takes the receiver's window from its `accept` (none: as fast as the channel takes the data). */
  setWindow(limit) {
    if (limit !== undefined) this._window = new SendWindow(limit);
  }

  /** Largest file-data frame to send: the connection's largest message, at most 256 KiB. */
  get chunkBytes() {
    return chunkBytesOf(this._link?.pc);
  }

  /** True while a frame is waiting. */
  get hasPending() {
    return this._inbox.length > 0 || this._failure !== null;
  }

  /** The DTLS fingerprints of the connection, ours and the peer's. */
  fingerprints() {
    return connectionFingerprints(this._link.pc);
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
    if (peerKnows(err)) return;
    this.sendMessage({ type: 'error', message: err instanceof TransferError ? err.message : String(err) });
  }

  /**
   * Ends the link after `err`. A peer that does not know yet is told why, and the link stays
   * (bounded) until that peer closes or stops too (see {@link beforeClosing}).
   */
  async stop(err) {
    this.fail(err);
    await this.close({ afterPeer: !peerKnows(err) });
  }

  /** Whether the peer said why it stops (its `error` waits in the inbox): it reads nothing more. */
  _peerStopped() {
    return this._inbox.some((data) => typeof data === 'string' && parseMessage(data)?.type === 'error');
  }

  /** Waits (bounded) until what was sent is delivered or the peer closes, then leaves. */
  async close({ afterPeer = false } = {}) {
    if (this._closed) return;
    this._closed = true;
    this._unlisten?.();
    await beforeClosing(this.channel, afterPeer ? () => Boolean(this._failure) || this._peerStopped() : null);
    clearTimeout(this._disconnectTimer);
    this._link?.close();
    for (const other of this._candidates.values()) other.close();
    this._candidates.clear();
    this._signaling.close();
    this._fail(new TransferError('closed', { peerKnows: true, kind: 'closed' }));
  }
}
