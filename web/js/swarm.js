/**
 * A page as one receiver of a swarm (docs/swarm.md): several receivers take the same files from one
 * sender under one code and pass on to each other the pieces they hold, so the sender uploads the
 * files about once. The page links to every peer of the swarm's room, proves the code on each link
 * (SPAKE2 and the fingerprint-bound confirmation, which also tells the peer's role), reads the
 * sender's offer with a BLAKE3 hash per piece, asks peers for pieces (js/swarm-scheduler.js), checks
 * each piece before it keeps or serves it, serves what others ask for, and hands each file to the
 * sink once all its pieces are in.
 *
 * ```js
 * const offer = await joinSwarm({ url, code: Code.parse('7-crossword-banana') });
 * const summary = await offer.accept(downloadSink(onFile), { onProgress });
 * ```
 *
 * @module swarm
 */

import { bytesToHex } from '../vendor/@noble/hashes/utils.js';
import { hasher } from './file-hash.js';
import { ManifestReader, checkManifest, isCount } from './manifest.js';
import { CONFIRMATION_BYTES, Pake, PakeError, confirmationMac, decodeHex, verifyConfirmation } from './pake.js';
import { PeerLink } from './peer.js';
import { Progress } from './progress.js';
import { SignalingClient } from './signaling.js';
import { Bits, HASH_BYTES, MAX_PIECES, PieceError, PieceMap } from './swarm-pieces.js';
import { REQUESTS_PER_PEER, Scheduler } from './swarm-scheduler.js';
import { openPieceStore } from './swarm-store.js';
import {
  CLOSE_WAIT_MS,
  IDLE_TIMEOUT_MS,
  MAX_CHUNK_BYTES,
  MISMATCH_MESSAGE,
  SEND_HIGH_WATER,
  SEND_LOW_WATER,
  STEP_TIMEOUT_MS,
  TRANSFER_CHANNEL,
  TRANSFER_LABEL,
} from './transfer-limits.js';
import { TransferError, printable, protocolError } from './transfer-error.js';
import { connectionFingerprints, drained, parseMessage } from './transfer-link.js';

/** Most peers the page links to (it serves each of them), as natively. */
export const MAX_PEERS = 16;
/** How often the page looks for stalled peers, missing pieces and the end. */
const TICK_MS = 500;
/** Domain separation of the swarm digest (ends in one zero byte). */
const SWARM_DIGEST_CONTEXT = 'peer-client swarm v1 manifest\0';

/** A peer broke the protocol. */
const broke = (what) => protocolError(what);

/**
 * The swarm digest (docs/swarm.md, "Offer"): BLAKE3 over a context, the piece size, each entry
 * (path length, path, kind, size, little-endian) and every piece hash.
 */
async function swarmDigest(entries, pieceBytes, hashes) {
  const hash = await hasher();
  const encoder = new TextEncoder();
  const u64 = (n) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
    return bytes;
  };
  hash.update(encoder.encode(SWARM_DIGEST_CONTEXT));
  hash.update(u64(pieceBytes));
  for (const entry of entries) {
    const path = encoder.encode(entry.path);
    hash.update(u64(path.length));
    hash.update(path);
    hash.update(Uint8Array.of(entry.kind === 'file' ? 1 : 0));
    hash.update(u64(entry.size));
  }
  hash.update(hashes);
  return bytesToHex(hash.digest());
}

/** Whether `bytes` hash to the 32 bytes of `hashes` at piece `piece`. */
async function matches(hashes, piece, bytes) {
  const hash = await hasher();
  hash.update(bytes);
  const digest = hash.digest();
  const expected = hashes.subarray(piece * HASH_BYTES, (piece + 1) * HASH_BYTES);
  return digest.every((byte, i) => byte === expected[i]);
}

/**
 * The sender's offer as it arrives: `swarm_offer`, the entries, then the hashes.
 */
class OfferReader {
  constructor() {
    this._head = null;
    this._manifest = null;
    this._map = null;
    this._hashes = null;
    this._filled = 0;
  }

  /**
   * Takes the next offer message; returns the offer once complete.
   * @returns {Promise<{entries: object[], totalBytes: number, map: PieceMap, hashes: Uint8Array, digest: string}|null>}
   */
  async push(message) {
    if (!this._head) {
      if (message.type !== 'swarm_offer') throw broke(`expected an offer, got ${printable(message.type)}`);
      if (!isCount(message.bytes) || !isCount(message.piece_bytes)) throw broke('the offer is malformed');
      this._head = message;
      this._manifest = new ManifestReader(message.entries);
    } else if (!this._manifest.isComplete) {
      if (message.type !== 'entry') throw broke(`expected a manifest entry, got ${printable(message.type)}`);
      this._manifest.push(message);
    } else if (message.type !== 'hashes' || typeof message.blake3 !== 'string') {
      throw broke(`expected piece hashes, got ${printable(message.type)}`);
    } else {
      const raw = decodeHex(message.blake3);
      if (!raw || raw.length % HASH_BYTES !== 0 || this._filled + raw.length > this._hashes.length) {
        throw broke("the piece hashes do not match the offer's pieces");
      }
      this._hashes.set(raw, this._filled);
      this._filled += raw.length;
    }
    if (!this._map && this._manifest.isComplete) {
      const entries = this._manifest.entries;
      checkManifest(entries, this._head.bytes);
      try {
        this._map = new PieceMap(entries, this._head.piece_bytes);
      } catch (err) {
        if (err instanceof PieceError) throw broke(err.message);
        throw err;
      }
      this._hashes = new Uint8Array(this._map.length * HASH_BYTES);
    }
    if (!this._map || this._filled < this._hashes.length) return null;
    const entries = this._manifest.entries;
    return {
      entries,
      totalBytes: this._head.bytes,
      map: this._map,
      hashes: this._hashes,
      digest: await swarmDigest(entries, this._map.pieceBytes, this._hashes),
    };
  }
}

/**
 * One peer of the swarm, as this page sees it.
 */
class SwarmPeer {
  constructor(id, link) {
    this.id = id;
    /** @type {PeerLink} */
    this.link = link;
    /** @type {RTCDataChannel|null} */
    this.channel = null;
    /** @type {Pake|null} */
    this.pake = null;
    this.key = null;
    this.fingerprints = null;
    /** @type {'sender'|'receiver'|null} The role it proved. */
    this.role = null;
    /** A piece arriving: its number and bytes. */
    this.arriving = null;
    /** A bitfield (and the `have`s after it) that came before the offer was accepted. */
    this.pendingBitfield = null;
    this.pendingHaves = [];
    /** Pieces it asked for, to send in order. */
    this.asked = [];
    this.serving = false;
  }

  /** Sends a control message (best effort: a closed channel is noticed by its events). */
  tell(message) {
    if (this.channel?.readyState !== 'open') return;
    try {
      this.channel.send(JSON.stringify(message));
    } catch {
      // Closing: the channel's close event drops the peer.
    }
  }

  /** Largest frame to send: the connection's largest message, at most 256 KiB. */
  get chunkBytes() {
    const max = this.link.pc.sctp?.maxMessageSize;
    return Math.max(1, Math.min(MAX_CHUNK_BYTES, Number.isFinite(max) && max > 0 ? max : 64 * 1024));
  }
}

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
 * Joins the swarm of `code` and reads its sender's offer.
 * @param {object} options
 * @param {string} options.url WebSocket URL of the signaling server.
 * @param {Code} options.code
 * @param {(status: string, detail?: object) => void} [options.onStatus]
 * @param {AbortSignal} [options.signal] aborting stops the transfer and tells the peers
 * @returns {Promise<SwarmOffer>}
 */
export async function joinSwarm({ url, code, onStatus = () => {}, signal }) {
  const node = new SwarmNode(url, code, onStatus, signal);
  try {
    return new SwarmOffer(node, await node.start());
  } catch (err) {
    await node.close();
    throw err;
  }
}

/** A page in a swarm, as a receiver. */
class SwarmNode {
  constructor(url, code, onStatus, signal) {
    this._code = code;
    this._onStatus = onStatus;
    this._signaling = new SignalingClient(url, code.swarmRoom());
    /** @type {Map<string, SwarmPeer>} */
    this._peers = new Map();
    /** Peers in the room, as the server reports them. */
    this._room = new Set();
    /** Peers that turned this page away, and the first reason. */
    this._refused = new Set();
    this._firstRefusal = null;
    this._iceServers = [];
    this._sender = null;
    this._reader = new OfferReader();
    this._offer = null;
    this._scheduler = null;
    this._store = null;
    this._failure = null;
    this._closed = false;
    this._started = Date.now();
    this._lastWork = Date.now();
    this._unavailableSince = null;
    this.receivedBytes = 0;
    this.heldBytes = 0;
    this.uploadedBytes = 0;
    /** What the caller waits for: the offer, then the end. */
    this._waiter = null;
    this._abort = () => this._fail(new TransferError('the transfer was cancelled', { kind: 'aborted' }));
    signal?.addEventListener('abort', this._abort, { once: true });
    this._signal = signal;
  }

  /** Joins the room and links to its peers; resolves with the sender's offer. */
  start() {
    const offered = this._wait();
    this._connect().catch((err) => this._fail(err));
    this._ticker = setInterval(() => this._guard(() => this._tick()), TICK_MS);
    return offered;
  }

  /** A promise the next {@link _resolve} or a failure settles. */
  _wait() {
    return new Promise((resolve, reject) => {
      if (this._failure) reject(this._failure);
      else this._waiter = { resolve, reject };
    });
  }

  _resolve(value) {
    const waiter = this._waiter;
    this._waiter = null;
    waiter?.resolve(value);
  }

  /** Runs `step`; what it throws stops the whole swarm for this page. */
  _guard(step) {
    try {
      const result = step();
      if (result instanceof Promise) result.catch((err) => this._fail(err));
    } catch (err) {
      this._fail(err);
    }
  }

  async _connect() {
    const signaling = this._signaling;
    const welcome = new Promise((resolve, reject) => {
      signaling.addEventListener('welcome', ({ detail }) => resolve(detail), { once: true });
      signaling.addEventListener('state', ({ detail }) => {
        if (detail.state === 'closed' && signaling.peerId === null) {
          reject(new TransferError(`the signaling server refused the connection: ${detail.reason ?? 'closed'}`));
        }
      });
    });
    this._onStatus('joining');
    signaling.connect();
    let timer;
    const hello = await Promise.race([
      welcome,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new TransferError('timed out waiting for the signaling server', { kind: 'timeout' })), STEP_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (this._failure) return;
    const peers = Array.isArray(hello.peers) ? hello.peers : [];
    this._iceServers = hello.ice_servers ?? [];
    if (peers.length === 0) {
      throw new TransferError(
        `nobody is sending to several receivers with code ${this._code.nameplate}-…; check the code and that the sender is still waiting`,
        { peerKnows: true, kind: 'no-sender' },
      );
    }
    signaling.addEventListener('peer_joined', ({ detail }) => this._room.add(detail.peer_id));
    signaling.addEventListener('peer_left', ({ detail }) => {
      this._room.delete(detail.peer_id);
      this._guard(() => {
        this._drop(detail.peer_id, null);
        this._checkTurnedAway();
      });
    });
    signaling.addEventListener('signal', ({ detail }) => {
      let peer = this._peers.get(detail.from);
      // A newcomer offers to everyone present; anything else from an unknown peer is left over.
      if (!peer && detail.data?.description?.type === 'offer') {
        this._room.add(detail.from);
        peer = this._link(detail.from);
      }
      peer?.link.handleSignal(detail.data);
    });
    signaling.addEventListener('error', ({ detail }) => {
      if (detail.code === 'internal' && detail.peer_id) this._peers.get(detail.peer_id)?.link.signalLost();
    });
    for (const id of peers) this._room.add(id);
    this._onStatus('connecting');
    // The newcomer offers, the transfer channel in its offer, to everyone present.
    for (const id of peers.slice(0, MAX_PEERS)) this._link(id)?.link.openNegotiatedChannels();
  }

  /** A link to peer `id`, unless the page links to {@link MAX_PEERS} already. */
  _link(id) {
    if (this._peers.size >= MAX_PEERS || this._closed) return null;
    const link = new PeerLink({
      localId: this._signaling.peerId,
      remoteId: id,
      iceServers: this._iceServers,
      sendSignal: (data) => this._signaling.signal(id, data),
      initiator: false,
      negotiatedChannels: [TRANSFER_CHANNEL],
    });
    const peer = new SwarmPeer(id, link);
    this._peers.set(id, peer);
    link.addEventListener('channel-open', ({ detail }) => {
      if (detail.label !== TRANSFER_LABEL || peer.channel || this._peers.get(id) !== peer) return;
      this._guard(() => this._opened(peer, detail.channel));
    });
    link.addEventListener('link-state', ({ detail }) => {
      if (detail.state === 'failed' || detail.state === 'closed') this._guard(() => this._drop(id, null));
    });
    return peer;
  }

  _opened(peer, channel) {
    peer.channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.bufferedAmountLowThreshold = SEND_LOW_WATER;
    channel.addEventListener('message', ({ data }) => {
      if (this._peers.get(peer.id) === peer) this._guard(() => this._onFrame(peer, data));
    });
    channel.addEventListener('close', () => this._guard(() => this._drop(peer.id, null)));
    peer.pake = new Pake(this._code.text);
    peer.tell({ type: 'pake', message: bytesToHex(peer.pake.message) });
  }

  /** A frame from `peer`: what it breaks drops that peer only, unless this page cannot go on. */
  async _onFrame(peer, data) {
    try {
      if (typeof data === 'string') await this._onMessage(peer, data);
      else await this._onData(peer, new Uint8Array(data));
    } catch (err) {
      this._peerFailed(peer, err);
    }
  }

  /** What `peer` broke drops it; what breaks this page (its storage) stops it. */
  _peerFailed(peer, err) {
    if (err instanceof TransferError && err.kind === 'write') throw err;
    this._drop(peer.id, err);
  }

  async _onMessage(peer, text) {
    const message = parseMessage(text);
    if (!message) throw broke('unreadable control message');
    if (message.type === 'error') {
      throw new TransferError(`the other side stopped: ${printable(message.message ?? '')}`, { peerKnows: true, kind: 'peer' });
    }
    if (!peer.role) return this._handshake(peer, message);
    switch (message.type) {
      case 'swarm_offer':
      case 'entry':
      case 'hashes':
        if (peer.id !== this._sender || this._offer) throw broke(`an unexpected message of type ${printable(message.type)}`);
        return this._offered(await this._reader.push(message));
      case 'bitfield':
        if (this._scheduler) return this._applyBitfield(peer, message);
        // A later one (the sender telling more) covers the first.
        peer.pendingBitfield = message;
        return;
      case 'have':
        if (this._scheduler) return this._peerHas(peer, message.piece);
        if (!peer.pendingBitfield || peer.pendingHaves.length >= MAX_PIECES) {
          throw broke('pieces announced out of turn');
        }
        peer.pendingHaves.push(message.piece);
        return;
      case 'request':
        return this._requested(peer, message.piece);
      case 'piece':
        return this._pieceStarts(peer, message.piece);
      case 'decline':
        return this._drop(peer.id, null);
      default:
        throw broke(`an unexpected message of type ${printable(message.type)}`);
    }
  }

  _handshake(peer, message) {
    if (message.type === 'pake' && peer.pake) {
      let key;
      try {
        key = peer.pake.finish(decodeHex(message.message) ?? new Uint8Array(0));
      } catch (err) {
        if (err instanceof PakeError) throw new TransferError(err.message);
        throw err;
      }
      peer.pake = null;
      peer.key = key;
      peer.fingerprints = connectionFingerprints(peer.link.pc);
      const mac = confirmationMac(key, 'receiver', peer.fingerprints.local, peer.fingerprints.remote);
      peer.tell({ type: 'confirm', mac: bytesToHex(mac) });
      return;
    }
    if (message.type === 'confirm' && peer.key) {
      const mac = decodeHex(message.mac);
      const role = ['sender', 'receiver'].find(
        (role) => mac && mac.length === CONFIRMATION_BYTES && verifyConfirmation(peer.key, role, peer.fingerprints, mac),
      );
      if (!role) throw new TransferError(`${MISMATCH_MESSAGE}; no file was written`, { kind: 'mismatch' });
      return this._proven(peer, role);
    }
    throw broke(`a message of type ${printable(message.type)} before the code was proved`);
  }

  _proven(peer, role) {
    if (role === 'sender') {
      if (this._sender) throw broke('a second peer claims to be the sender');
      this._sender = peer.id;
    }
    peer.role = role;
    this._onStatus('authenticated');
    if (this._scheduler) peer.tell(this._bitfield());
  }

  /** The offer is complete (or not yet, when `offer` is null). */
  _offered(offer) {
    if (!offer) return;
    this._offer = offer;
    this._resolve(offer);
  }

  _bitfield() {
    return { type: 'bitfield', have: this._scheduler.have.encode(), digest: this._offer.digest };
  }

  _applyBitfield(peer, message) {
    if (typeof message.digest !== 'string' || message.digest.toLowerCase() !== this._offer.digest) {
      throw broke('it holds a different offer under this code');
    }
    let has;
    try {
      has = Bits.decode(message.have, this._offer.map.length);
      this._scheduler.addPeer(peer.id, has, Date.now());
    } catch (err) {
      if (err instanceof PieceError) throw broke(err.message);
      throw err;
    }
    this._requestMore();
  }

  _peerHas(peer, piece) {
    try {
      this._scheduler.peerHas(peer.id, piece);
    } catch (err) {
      if (err instanceof PieceError) throw broke(err.message);
      throw err;
    }
    this._requestMore();
  }

  _requested(peer, piece) {
    if (!this._scheduler?.have.has(piece)) throw broke(`it asked for piece ${printable(piece)}, which this side does not have`);
    if (peer.asked.length >= REQUESTS_PER_PEER) throw broke('it asked for more pieces at once than allowed');
    peer.asked.push(piece);
    this._lastWork = Date.now();
    if (!peer.serving) this._serve(peer).catch((err) => this._guard(() => this._peerFailed(peer, err)));
  }

  /** Sends `peer` the pieces it asked for, one after another, as its channel takes them. */
  async _serve(peer) {
    peer.serving = true;
    try {
      while (peer.asked.length > 0 && this._peers.get(peer.id) === peer) {
        const piece = peer.asked[0];
        const bytes = await this._readVerified(piece);
        peer.tell({ type: 'piece', piece });
        const chunk = peer.chunkBytes;
        for (let at = 0; at < bytes.length; at += chunk) {
          const channel = peer.channel;
          if (channel.readyState !== 'open') return;
          if (channel.bufferedAmount > SEND_HIGH_WATER) await drained(channel);
          channel.send(bytes.subarray(at, Math.min(bytes.length, at + chunk)));
        }
        peer.asked.shift();
        this.uploadedBytes += bytes.length;
        this._lastWork = Date.now();
      }
    } finally {
      peer.serving = false;
    }
  }

  /** Piece `piece` from this page's store, checked again before it leaves. */
  async _readVerified(piece) {
    const bytes = await this._store.read(piece);
    if (!(await matches(this._offer.hashes, piece, bytes))) {
      throw new TransferError(`piece ${piece} kept in this browser no longer matches its hash; receive again`, { kind: 'write' });
    }
    return bytes;
  }

  _pieceStarts(peer, piece) {
    const place = this._offer?.map.piece(piece);
    if (!place || !this._scheduler.isAskedOf(peer.id, piece) || peer.arriving) {
      throw broke(`piece ${printable(piece)} was sent without being asked for`);
    }
    peer.arriving = { piece, bytes: new Uint8Array(place.length), filled: 0 };
  }

  async _onData(peer, data) {
    const arriving = peer.arriving;
    if (!arriving) throw broke(`${data.length} bytes of data outside a piece`);
    if (arriving.filled + data.length > arriving.bytes.length) throw broke(`more data than piece ${arriving.piece} holds`);
    arriving.bytes.set(data, arriving.filled);
    arriving.filled += data.length;
    if (arriving.filled < arriving.bytes.length) return;
    peer.arriving = null;
    const { piece, bytes } = arriving;
    if (!(await matches(this._offer.hashes, piece, bytes))) {
      throw broke(`it sent piece ${piece}, which does not match the sender's hash`);
    }
    await this._store.write(piece, bytes);
    if (this._failure || this._peers.get(peer.id) !== peer) return;
    let arrival;
    try {
      arrival = this._scheduler.arrived(peer.id, piece, Date.now());
    } catch (err) {
      if (err instanceof PieceError) return;
      throw err;
    }
    if (arrival !== 'new') return;
    this._gained(piece);
  }

  /** Piece `piece` is verified and kept: peers hear of it, a file whose pieces are all in is handed over. */
  _gained(piece) {
    const place = this._offer.map.piece(piece);
    this._lastWork = Date.now();
    this.receivedBytes += place.length;
    this._progress.advance(place.length);
    for (const peer of this._peers.values()) if (peer.role) peer.tell({ type: 'have', piece });
    this._missingOfEntry[place.entry] -= 1;
    if (this._missingOfEntry[place.entry] === 0) this._handOver(place.entry);
    this._requestMore();
  }

  /** Hands file `entry` to the sink, after the files before it. */
  _handOver(entry) {
    this._handingOver += 1;
    this._handedOver = this._handedOver
      .then(async () => {
        const { path, size } = this._offer.entries[entry];
        const [start, end] = this._offer.map.ofEntry(entry);
        const out = await this._sink.open(path, 0, await hasher(), size);
        try {
          for (let piece = start; piece < end; piece += 1) await out.write(await this._readVerified(piece));
        } catch (err) {
          await out.abort();
          throw err;
        }
        await out.finish();
        this._handingOver -= 1;
      })
      .catch((err) => this._fail(err));
  }

  _requestMore() {
    if (!this._scheduler || this._failure) return;
    for (const [id, piece] of this._scheduler.nextRequests(Date.now())) this._peers.get(id)?.tell({ type: 'request', piece });
  }

  /** Accepted: prepares the sink and the store, tells the peers what this page holds, and runs to the end. */
  async receive(sink, onStatus, onProgress) {
    this._onStatus = onStatus;
    const ended = this._wait();
    this._guard(() => this._accept(sink, onProgress));
    try {
      const summary = await ended;
      await this.close();
      return summary;
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async _accept(sink, onProgress) {
    const offer = this._offer;
    await sink.prepare(offer.entries);
    this._sink = sink;
    this._store = await openPieceStore(offer.digest, offer.totalBytes);
    const have = new Bits(offer.map.length);
    for (const piece of await this._store.held()) {
      if (piece < offer.map.length && (await this._store.read(piece).then((b) => matches(offer.hashes, piece, b), () => false))) have.add(piece);
    }
    this._progress = new Progress(onProgress);
    this._progress.begin(offer.totalBytes, offer.entries.filter((e) => e.kind === 'file').length);
    this._missingOfEntry = offer.entries.map((_, entry) => {
      const [start, end] = offer.map.ofEntry(entry);
      let missing = 0;
      for (let piece = start; piece < end; piece += 1) {
        if (have.has(piece)) this.heldBytes += offer.map.piece(piece).length;
        else missing += 1;
      }
      return missing;
    });
    this._progress.skip(this.heldBytes);
    this._handedOver = Promise.resolve();
    this._handingOver = 0;
    this._scheduler = new Scheduler(have);
    this._acceptedAt = Date.now();
    this._lastWork = Date.now();
    offer.entries.forEach((entry, index) => {
      if (entry.kind === 'file' && this._missingOfEntry[index] === 0) this._handOver(index);
    });
    this._onStatus('receiving');
    const bitfield = this._bitfield();
    for (const peer of this._peers.values()) {
      if (!peer.role) continue;
      peer.tell(bitfield);
      const pending = peer.pendingBitfield;
      const haves = peer.pendingHaves;
      peer.pendingBitfield = null;
      peer.pendingHaves = [];
      if (!pending) continue;
      try {
        this._applyBitfield(peer, pending);
        for (const piece of haves) this._peerHas(peer, piece);
      } catch (err) {
        this._drop(peer.id, err);
      }
    }
    this._requestMore();
  }

  _tick() {
    if (this._failure || this._closed) return;
    const now = Date.now();
    if (!this._scheduler) {
      if (!this._sender && !this._offer && now - this._started > STEP_TIMEOUT_MS) {
        throw new TransferError('timed out connecting to the sender (no direct or relayed path was found)', { kind: 'timeout' });
      }
      return;
    }
    for (const id of this._scheduler.stalled(now, IDLE_TIMEOUT_MS)) {
      this._drop(id, new TransferError(`it sent nothing for ${IDLE_TIMEOUT_MS / 1000} s while pieces were asked of it`, { kind: 'timeout' }));
    }
    this._requestMore();
    if (this._isDone(now)) return this._finish();
    const unavailable = this._scheduler.unavailable();
    if (unavailable === 0) {
      this._unavailableSince = null;
      return;
    }
    if (this._unavailableSince === null) {
      this._unavailableSince = now;
      this._onStatus('unavailable', { pieces: unavailable });
    } else if (now - this._unavailableSince >= IDLE_TIMEOUT_MS) {
      throw new TransferError(
        `${unavailable} piece${unavailable === 1 ? ' is' : 's are'} held by no peer still here; ` +
          'what arrived is kept: receive again with the same code to go on',
        { kind: 'unavailable' },
      );
    }
  }

  /** Every file handed over, and every peer holds everything (or nobody asked for anything for a while). */
  _isDone(now) {
    if (!this._scheduler.isComplete || this._handingOver > 0) return false;
    if (this._completeSince === undefined) {
      this._completeSince = now;
      this._onStatus('sharing');
    }
    const everyoneHas = [...this._peers.values()].every((peer) => peer.role && this._scheduler.peerIsComplete(peer.id));
    return everyoneHas || now - this._lastWork >= IDLE_TIMEOUT_MS;
  }

  async _finish() {
    if (this._finishing) return;
    this._finishing = true;
    await this._flush();
    this._onStatus('done');
    this._progress.end();
    this._resolve({
      files: this._offer.entries.filter((e) => e.kind === 'file').length,
      totalBytes: this._offer.totalBytes,
      receivedBytes: this.receivedBytes,
      heldBytes: this.heldBytes,
      uploadedBytes: this.uploadedBytes,
      seconds: (Date.now() - this._acceptedAt) / 1000,
    });
  }

  /** Waits (at most {@link CLOSE_WAIT_MS}) until what every channel holds went out. */
  async _flush() {
    const deadline = Date.now() + CLOSE_WAIT_MS;
    const busy = () => [...this._peers.values()].some((peer) => peer.channel?.readyState === 'open' && peer.channel.bufferedAmount > 0);
    while (busy() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /** Forgets peer `id`; tells it why when `why` is ours to tell. */
  _drop(id, why) {
    const peer = this._peers.get(id);
    if (!peer) return;
    this._peers.delete(id);
    this._scheduler?.removePeer(id);
    if (why) {
      console.warn(`swarm: dropped peer ${id}: ${why.message}`);
      if (!why.peerKnows) peer.tell({ type: 'error', message: why.message });
      this._refused.add(id);
      const proof = (err) => err.kind === 'mismatch';
      if (!this._firstRefusal || (proof(why) && !proof(this._firstRefusal))) this._firstRefusal = why;
    }
    // What was queued (a reason, a last `have`) still goes out, then the link closes.
    const channel = peer.channel;
    const closing = Date.now() + CLOSE_WAIT_MS;
    const close = () => {
      if (channel?.readyState === 'open' && channel.bufferedAmount > 0 && Date.now() < closing) setTimeout(close, 50);
      else peer.link.close();
    };
    close();
    if (this._sender === id) {
      this._sender = null;
      if (!this._offer) throw new TransferError('the sender left before its offer arrived', { peerKnows: true, kind: 'gone' });
    }
    if (why) this._checkTurnedAway();
  }

  /** A page without an offer that every peer in the room turned away (a wrong code) stops with the first reason. */
  _checkTurnedAway() {
    if (this._offer || this._sender || !this._firstRefusal) return;
    if ([...this._room].every((id) => this._refused.has(id))) throw this._firstRefusal;
  }

  /** Tells every linked peer `message` (best effort). */
  tellAll(message) {
    for (const peer of this._peers.values()) peer.tell(message);
  }

  _fail(err) {
    if (this._failure || this._closed) return;
    this._failure = err;
    if (!(err instanceof TransferError && err.peerKnows)) this.tellAll({ type: 'error', message: err.message });
    const waiter = this._waiter;
    this._waiter = null;
    waiter?.reject(err);
    if (!waiter) this.close();
  }

  /** Leaves the swarm: what the channels hold goes out first (bounded), then every link closes. */
  async close() {
    if (this._closed) return;
    this._closed = true;
    clearInterval(this._ticker);
    this._signal?.removeEventListener('abort', this._abort);
    await this._flush();
    for (const peer of this._peers.values()) peer.link.close();
    this._peers.clear();
    this._signaling.close();
  }
}
