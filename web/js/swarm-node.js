/**
 * A page in a swarm (docs/swarm.md), as its sender or as one of its receivers: links to every peer of
 * the swarm's room, proves the code on each link (SPAKE2 and the fingerprint-bound confirmation,
 * which also tells the peer's role), serves the pieces peers ask for, and
 *
 * - as a receiver: reads the sender's offer, asks peers for pieces (js/swarm-scheduler.js), checks
 *   each before it keeps or serves it, and hands each file to the sink once all its pieces are in;
 * - as the sender: offers the files to every receiver that proves the code, tells each what it has
 *   (js/swarm-seeding.js), and tracks who holds what until enough receivers hold everything.
 *
 * The decisions are in the sans-IO modules; this is the shell around them.
 *
 * @module swarm-node
 */

import { bytesToHex } from '../vendor/@noble/hashes/utils.js';
import { hasher } from './file-hash.js';
import { CONFIRMATION_BYTES, Pake, PakeError, confirmationMac, decodeHex, verifyConfirmation } from './pake.js';
import { PeerLink } from './peer.js';
import { Progress } from './progress.js';
import { SignalingClient } from './signaling.js';
import { OfferReader, matches, offerMessages, readPiece } from './swarm-offer.js';
import { Bits, MAX_PIECES, PieceError } from './swarm-pieces.js';
import { REQUESTS_PER_PEER, Scheduler } from './swarm-scheduler.js';
import { Seeding } from './swarm-seeding.js';
import { openPieceStore } from './swarm-store.js';
import {
  IDLE_TIMEOUT_MS,
  MISMATCH_MESSAGE,
  SEND_HIGH_WATER,
  SEND_LOW_WATER,
  STEP_TIMEOUT_MS,
  TRANSFER_CHANNEL,
  TRANSFER_LABEL,
} from './transfer-limits.js';
import { TransferError, peerKnows, printable, protocolError } from './transfer-error.js';
import { beforeClosing, chunkBytesOf, connectionFingerprints, drained, parseMessage, welcomed, withTimeout } from './transfer-link.js';

/** Most peers the page links to (it serves each of them), as natively. */
export const MAX_PEERS = 16;
/** Failed proofs of the code after which a sender stops: each is one guess at the code's secret. */
export const MAX_FAILED_PROOFS = 3;
/** How often the page looks for stalled peers, missing pieces and the end. */
const TICK_MS = 500;
/** Errors of this page itself, not of a peer: they stop the whole swarm for it. */
const OWN_FAILURES = new Set(['write', 'changed']);

const broke = protocolError;

/** Runs `step`; a {@link PieceError} is the peer's protocol error. */
function checked(step) {
  try {
    return step();
  } catch (err) {
    if (err instanceof PieceError) throw broke(err.message);
    throw err;
  }
}

/**
 * What happened to a peer, for the user: `{joined: role}`, `{holds: pieces, of}`, `{finished: true}`,
 * `{declined: true}`, `{left: true}` or `{dropped: why}`.
 * @typedef {object} PeerNews
 */

/** One peer of the swarm, as this page sees it. */
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
    /** A bitfield (and the `have`s after it) that came before this page knew the offer. */
    this.pendingBitfield = null;
    this.pendingHaves = [];
    /** @type {Bits|null} What it holds, as a sender tracks it (a receiver's scheduler knows). */
    this.has = null;
    /** Pieces it asked for, to send in order. */
    this.asked = [];
    this.serving = false;
    /** It said why it stops (its `error`) after this page stopped reading it. */
    this.stopped = false;
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
    return chunkBytesOf(this.link.pc);
  }
}

/** A page in a swarm. */
export class SwarmNode {
  /**
   * @param {object} options
   * @param {string} options.url WebSocket URL of the signaling server
   * @param {Code} options.code
   * @param {'sender'|'receiver'} options.role
   * @param {boolean} [options.exclusive] a sender with a generated code: an occupied room is `kind: 'in-use'`
   * @param {import('./swarm-offer.js').SwarmContent} [options.content] what a sender offers
   * @param {Map<number, File>} [options.files] a sender's file of each file entry
   * @param {number} [options.receivers] receivers a sender waits for
   * @param {(status: string, detail?: object) => void} [options.onStatus]
   * @param {(peer: string, news: PeerNews) => void} [options.onPeer]
   * @param {AbortSignal} [options.signal] aborting stops the transfer and tells the peers
   */
  constructor({ url, code, role, exclusive = false, content = null, files = null, receivers = 0, onStatus = () => {}, onPeer = () => {}, signal }) {
    this._code = code;
    this._role = role;
    this._exclusive = exclusive;
    this._onStatus = onStatus;
    this._onPeer = onPeer;
    this._signaling = new SignalingClient(url, code.swarmRoom());
    /** @type {Map<string, SwarmPeer>} */
    this._peers = new Map();
    /** @type {Set<Promise<void>>} Links of dropped peers that are still closing. */
    this._closingLinks = new Set();
    /** Whether any peer's transfer channel opened: a receiver that then finds no sender was not let down by the path. */
    this._linked = false;
    /** Peers in the room, as the server reports them. */
    this._room = new Set();
    /** Peers that turned this page away, and the first reason. */
    this._refused = new Set();
    this._firstRefusal = null;
    this._failedProofs = 0;
    this._iceServers = [];
    /** A receiver's sender, once it proved itself. */
    this._sender = null;
    this._reader = new OfferReader();
    /** @type {import('./swarm-offer.js').SwarmContent|null} */
    this._content = content;
    this._files = files;
    this._wanted = receivers;
    /** A sender's advertising, and its count of the receivers holding each piece. */
    this._seeding = role === 'sender' ? new Seeding(content.map.length) : null;
    this._holders = role === 'sender' ? new Uint16Array(content.map.length) : null;
    this._heldSomewhere = 0;
    this._seeded = false;
    /** Receivers that hold every piece. */
    this._finished = new Set();
    this._scheduler = null;
    this._store = null;
    this._progress = null;
    this._failure = null;
    this._closed = false;
    this._finishing = false;
    this._started = Date.now();
    this._lastWork = Date.now();
    this._unavailableSince = null;
    this._completeSince = null;
    this.receivedBytes = 0;
    this.heldBytes = 0;
    this.uploadedBytes = 0;
    /** What the caller waits for: the offer (or the room, for a sender), then the end. */
    this._waiter = null;
    this._abort = () => this._fail(new TransferError('the transfer was cancelled', { kind: 'aborted' }));
    signal?.addEventListener('abort', this._abort, { once: true });
    this._signal = signal;
  }

  /**
   * Joins the room and links to its peers; resolves with the sender's offer (a receiver) or once
   * the room is this page's (a sender).
   */
  start() {
    const started = this._wait();
    this._connect().catch((err) => this._fail(err));
    this._ticker = setInterval(() => this._guard(() => this._tick()), TICK_MS);
    return started;
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
    const welcome = welcomed(signaling);
    this._onStatus('joining');
    signaling.connect();
    const hello = await withTimeout(welcome, STEP_TIMEOUT_MS, 'waiting for the signaling server');
    if (this._failure) return;
    const peers = Array.isArray(hello.peers) ? hello.peers : [];
    this._iceServers = hello.ice_servers ?? [];
    if (this._role === 'receiver' && peers.length === 0) {
      throw new TransferError(
        `nobody is sending to several receivers with code ${this._code.nameplate}-…; check the code and that the sender is still waiting`,
        { peerKnows: true, kind: 'no-sender' },
      );
    }
    if (this._role === 'sender' && this._exclusive && peers.length > 0) {
      throw new TransferError(`the code number ${this._code.nameplate} is in use on this server`, { peerKnows: true, kind: 'in-use' });
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
    if (this._role === 'sender') {
      this._onStatus('waiting');
      this._resolve('joined');
    } else {
      this._onStatus('connecting');
    }
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
      this._linked = true;
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
      if (!this._closed && this._peers.get(peer.id) === peer) this._guard(() => this._onFrame(peer, data));
      // A link being closed waits for the peer's own reason, if it gives one.
      else if (typeof data === 'string' && parseMessage(data)?.type === 'error') peer.stopped = true;
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

  /** What `peer` broke drops it; what breaks this page (its storage, its files) stops it. */
  _peerFailed(peer, err) {
    if (err instanceof TransferError && OWN_FAILURES.has(err.kind)) throw err;
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
        if (peer.id !== this._sender || this._content) throw broke(`an unexpected message of type ${printable(message.type)}`);
        return this._offered(await this._reader.push(message));
      case 'bitfield':
        if (this._role === 'sender') return this._receiverHolds(peer, message);
        if (this._scheduler) return this._applyBitfield(peer, message);
        // A later one (the sender telling more) covers the first.
        peer.pendingBitfield = message;
        return;
      case 'have':
        if (this._role === 'sender') return this._receiverHas(peer, message.piece);
        if (this._scheduler) return this._peerHas(peer, message.piece);
        if (!peer.pendingBitfield || peer.pendingHaves.length >= MAX_PIECES) throw broke('pieces announced out of turn');
        peer.pendingHaves.push(message.piece);
        return;
      case 'request':
        return this._requested(peer, message.piece);
      case 'piece':
        return this._pieceStarts(peer, message.piece);
      case 'decline':
        if (this._role === 'sender') this._onPeer(peer.id, { declined: true });
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
      const mac = confirmationMac(key, this._role, peer.fingerprints.local, peer.fingerprints.remote);
      peer.tell({ type: 'confirm', mac: bytesToHex(mac) });
      return;
    }
    if (message.type === 'confirm' && peer.key) {
      const mac = decodeHex(message.mac);
      const role = ['sender', 'receiver'].find(
        (role) => mac && mac.length === CONFIRMATION_BYTES && verifyConfirmation(peer.key, role, peer.fingerprints, mac),
      );
      if (!role) {
        const consequence = this._role === 'sender' ? 'nothing was sent' : 'no file was written';
        throw new TransferError(`${MISMATCH_MESSAGE}; ${consequence}`, { kind: 'mismatch' });
      }
      return this._proven(peer, role);
    }
    throw broke(`a message of type ${printable(message.type)} before the code was proved`);
  }

  _proven(peer, role) {
    if (role === 'sender') {
      if (this._role === 'sender') throw broke('another peer sends with this code');
      if (this._sender) throw broke('a second peer claims to be the sender');
      this._sender = peer.id;
    }
    peer.role = role;
    this._onPeer(peer.id, { joined: role });
    if (this._role === 'sender') {
      this._onStatus('sending');
      for (const message of offerMessages(this._content)) peer.tell(message);
      peer.tell({ type: 'bitfield', have: this._seeding.join(peer.id).encode(), digest: this._content.digest });
      return;
    }
    this._onStatus('authenticated');
    if (this._scheduler) peer.tell(this._bitfield());
  }

  /** The offer is complete (or not yet, when `offer` is null). */
  _offered(offer) {
    if (!offer) return;
    this._content = offer;
    this._resolve(offer);
  }

  _bitfield() {
    return { type: 'bitfield', have: this._scheduler.have.encode(), digest: this._content.digest };
  }

  _checkDigest(message) {
    if (typeof message.digest !== 'string' || message.digest.toLowerCase() !== this._content.digest) {
      throw broke('it holds a different offer under this code');
    }
  }

  _applyBitfield(peer, message) {
    this._checkDigest(message);
    checked(() => this._scheduler.addPeer(peer.id, Bits.decode(message.have, this._content.map.length), Date.now()));
    this._requestMore();
  }

  _peerHas(peer, piece) {
    checked(() => this._scheduler.peerHas(peer.id, piece));
    this._requestMore();
  }

  /** A sender hears what a receiver holds (its bitfield: what it adds). */
  _receiverHolds(peer, message) {
    this._checkDigest(message);
    const has = checked(() => Bits.decode(message.have, this._content.map.length));
    peer.has ??= new Bits(has.length);
    for (const piece of has) this._receiverGains(peer, piece);
    this._receiverProgress(peer);
  }

  /** A sender hears that a receiver holds one more piece. */
  _receiverHas(peer, piece) {
    if (!peer.has) throw broke('a piece announced before the bitfield');
    if (!Number.isSafeInteger(piece) || piece < 0 || piece >= this._content.map.length) throw broke(`piece ${printable(piece)} does not exist`);
    this._receiverGains(peer, piece);
    this._receiverProgress(peer);
  }

  /** A receiver holds `piece`: counted once, and the bytes receivers hold grow. */
  _receiverGains(peer, piece) {
    if (peer.has.add(piece)) return;
    this._countHolder(piece, 1);
    this._progress?.advance(this._content.map.piece(piece).length);
  }

  _receiverProgress(peer) {
    this._onPeer(peer.id, { holds: peer.has.count, of: peer.has.length });
    if (peer.has.isFull && peer.role === 'receiver' && !this._finished.has(peer.id)) {
      this._finished.add(peer.id);
      this._onPeer(peer.id, { finished: true });
    }
  }

  /** A sender's count of the receivers holding `piece` goes up or down. */
  _countHolder(piece, by) {
    const before = this._holders[piece];
    this._holders[piece] = Math.max(0, before + by);
    if (before === 0 && by > 0) {
      this._heldSomewhere += 1;
      // A receiver holds it (from an earlier run, say): not fresh any more.
      this._advertise(this._seeding.held(piece, Date.now()));
    }
    if (before === 1 && by < 0) {
      this._heldSomewhere -= 1;
      this._advertise(this._seeding.lost(piece));
    }
    if (!this._seeded && this._heldSomewhere === this._content.map.length) {
      this._seeded = true;
      this._onStatus('seeded');
    }
  }

  /** Sends what the sender's advertising decided. */
  _advertise(adverts) {
    for (const [id, advert] of adverts) {
      const peer = this._peers.get(id);
      if (advert.bitfield) peer?.tell({ type: 'bitfield', have: advert.bitfield.encode(), digest: this._content.digest });
      else peer?.tell({ type: 'have', piece: advert.have });
    }
  }

  _requested(peer, piece) {
    const held = this._role === 'sender' ? this._content.map.piece(piece) !== null : this._scheduler?.have.has(piece);
    if (!held) throw broke(`it asked for piece ${printable(piece)}, which this side does not have`);
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
        if (this._seeding) this._advertise(this._seeding.sent(peer.id, piece, Date.now()));
      }
    } finally {
      peer.serving = false;
    }
  }

  /** Piece `piece`, checked again before it leaves or is handed over. */
  async _readVerified(piece) {
    if (this._role === 'sender') {
      const { entries, map } = this._content;
      const bytes = await readPiece(entries, this._files, map, piece);
      if (!(await matches(this._content.hashes, piece, bytes))) {
        const { path } = entries[map.piece(piece).entry];
        throw new TransferError(`${path} changed after it was offered; pick it again and send again`, { kind: 'changed' });
      }
      return bytes;
    }
    const bytes = await this._store.read(piece);
    if (!(await matches(this._content.hashes, piece, bytes))) {
      throw new TransferError(`piece ${piece} kept in this browser no longer matches its hash; receive again`, { kind: 'write' });
    }
    return bytes;
  }

  _pieceStarts(peer, piece) {
    const place = this._content?.map.piece(piece);
    if (!place || !this._scheduler?.isAskedOf(peer.id, piece) || peer.arriving) {
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
    if (!(await matches(this._content.hashes, piece, bytes))) {
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
    if (arrival === 'new') this._gained(piece);
  }

  /** Piece `piece` is verified and kept: peers hear of it, a file whose pieces are all in is handed over. */
  _gained(piece) {
    const place = this._content.map.piece(piece);
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
        const { path, size } = this._content.entries[entry];
        const [start, end] = this._content.map.ofEntry(entry);
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

  /**
   * A receiver accepted: prepares the sink and the store, tells the peers what this page holds, and
   * runs until every file is handed over and no connected peer needs it.
   */
  async receive(sink, onStatus, onProgress) {
    this._onStatus = onStatus;
    const summary = await this._runToEnd(() => this._accept(sink, onProgress));
    // Every file was handed over: the pieces kept to serve and to resume go.
    await this._store.remove().catch((err) => console.warn(`swarm: the kept pieces could not be removed: ${err?.message ?? err}`));
    return summary;
  }

  /** A sender: runs until enough receivers hold everything. */
  async send(onProgress) {
    this._progress = new Progress(onProgress);
    this._progress.begin(this._content.totalBytes * this._wanted, this._content.entries.filter((e) => e.kind === 'file').length);
    this._acceptedAt = Date.now();
    return this._runToEnd(() => {});
  }

  async _runToEnd(begin) {
    const ended = this._wait();
    this._guard(begin);
    try {
      const summary = await ended;
      await this.close();
      return summary;
    } catch (err) {
      // The page says why at once; the links close behind it (bounded).
      this.close().catch((closeErr) => console.warn(`swarm: leaving after a failure: ${closeErr?.message ?? closeErr}`));
      throw err;
    }
  }

  async _accept(sink, onProgress) {
    const offer = this._content;
    await sink.prepare(offer.entries);
    this._sink = sink;
    this._store = await openPieceStore(offer.digest, offer.totalBytes);
    const have = new Bits(offer.map.length);
    for (const piece of await this._store.held()) {
      const intact = await this._store.read(piece).then((bytes) => matches(offer.hashes, piece, bytes), () => false);
      if (piece < offer.map.length && intact) have.add(piece);
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
    if (this._role === 'sender') {
      this._advertise(this._seeding.tick(now));
      const allDone = [...this._peers.values()].every((peer) => !peer.role || this._finished.has(peer.id));
      if (this._progress && this._finished.size >= this._wanted && allDone) this._finish();
      return;
    }
    if (!this._scheduler) {
      if (!this._sender && !this._content && now - this._started > STEP_TIMEOUT_MS) {
        const why = this._linked
          ? 'finding the sender (a peer linked, but none proved to be the sender: it may have left, or be out of reach)'
          : 'connecting to the sender (no direct or relayed path was found)';
        throw new TransferError(`timed out ${why}`, { kind: 'timeout' });
      }
      return;
    }
    for (const id of this._scheduler.stalled(now, IDLE_TIMEOUT_MS)) {
      this._drop(id, new TransferError(`it sent nothing for ${IDLE_TIMEOUT_MS / 1000} s while pieces were asked of it`, { kind: 'timeout' }));
    }
    this._requestMore();
    if (this._isDone(now)) {
      this._finish();
      return;
    }
    // The sender holds every piece, whatever it has told of so far.
    const unavailable = this._sender ? 0 : this._scheduler.unavailable();
    if (unavailable === 0) {
      this._unavailableSince = null;
      return;
    }
    if (this._unavailableSince === null) {
      this._unavailableSince = now;
      this._onStatus('unavailable', { pieces: unavailable });
    } else if (now - this._unavailableSince >= IDLE_TIMEOUT_MS) {
      throw new TransferError(
        `no peer here has ${unavailable} of the pieces still missing (the sender left before anyone got them); ` +
          'the pieces received so far are kept: receive again with the same code once the sender sends again',
        { kind: 'unavailable' },
      );
    }
  }

  /** A receiver: every file handed over, and every peer holds everything (or nobody asked for anything for a while). */
  _isDone(now) {
    if (!this._scheduler.isComplete || this._handingOver > 0) return false;
    if (this._completeSince === null) {
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
    const seconds = (Date.now() - this._acceptedAt) / 1000;
    const files = this._content.entries.filter((e) => e.kind === 'file').length;
    const totalBytes = this._content.totalBytes;
    if (this._role === 'sender') {
      this._resolve({ files, dirs: this._content.entries.length - files, receivers: this._finished.size, totalBytes, uploadedBytes: this.uploadedBytes, seconds });
    } else {
      this._resolve({ files, totalBytes, receivedBytes: this.receivedBytes, heldBytes: this.heldBytes, uploadedBytes: this.uploadedBytes, seconds });
    }
  }

  /** Waits (bounded, see {@link beforeClosing}) until what every channel holds went out. */
  async _flush() {
    await Promise.all([...this._peers.values()].map((peer) => beforeClosing(peer.channel)));
  }

  /** Forgets peer `id`; tells it why when `why` is ours to tell. */
  _drop(id, why) {
    const peer = this._peers.get(id);
    if (!peer) return;
    const unproven = !peer.role;
    this._peers.delete(id);
    this._scheduler?.removePeer(id);
    if (this._role === 'sender') {
      for (const piece of peer.has ?? []) this._countHolder(piece, -1);
      this._advertise(this._seeding.left(id));
    }
    // What was queued (a reason, a last `have`) still goes out, then the link closes.
    const told = Boolean(why) && !peerKnows(why);
    if (told) peer.tell({ type: 'error', message: why.message });
    // Leaving the room before this link closes would end it at the peer (the server tells it this
    // page left) ahead of what the link still carries: close() waits for it.
    const closing = this._closeLink(peer, told);
    this._closingLinks.add(closing);
    closing.finally(() => this._closingLinks.delete(closing));
    if (!why) {
      if (peer.role) this._onPeer(id, { left: true });
    } else {
      console.warn(`swarm: dropped peer ${id}: ${why.message}`);
      this._onPeer(id, { dropped: why.message });
      this._refused.add(id);
      // A wrong code found by either side: the peer's own verdict may come first, as its `error`.
      const guessed = why.kind === 'mismatch' || (why.kind === 'peer' && unproven);
      if (guessed) this._failedProofs += 1;
      if (this._role === 'sender' && this._failedProofs >= MAX_FAILED_PROOFS) {
        throw new TransferError(
          `${this._failedProofs} peers failed to prove the code; someone may be guessing it, so sending stopped (send again: a new code is drawn)`,
          { kind: 'guessing' },
        );
      }
      const proof = (err) => err.kind === 'mismatch';
      if (!this._firstRefusal || (proof(why) && !proof(this._firstRefusal))) this._firstRefusal = why;
    }
    if (this._sender === id) {
      this._sender = null;
      if (!this._content) throw why ?? new TransferError('the sender left before its offer arrived', { peerKnows: true, kind: 'gone' });
    }
    if (why) this._checkTurnedAway();
  }

  /** A receiver without an offer that every peer in the room turned away (a wrong code) stops with the first reason. */
  _checkTurnedAway() {
    if (this._role === 'sender' || this._content || this._sender || !this._firstRefusal) return;
    if ([...this._room].every((id) => this._refused.has(id))) throw this._firstRefusal;
  }

  /** Tells every linked peer `message` (best effort). */
  tellAll(message) {
    for (const peer of this._peers.values()) peer.tell(message);
  }

  _fail(err) {
    if (this._failure || this._closed) return;
    this._failure = err;
    if (!peerKnows(err)) this.tellAll({ type: 'error', message: err.message });
    const waiter = this._waiter;
    this._waiter = null;
    waiter?.reject(err);
    if (!waiter) this.close();
  }

  /**
   * Closes `peer`'s link once its channel sent what it holds; a peer that was `told` why this page
   * stops keeps its link until it closes it or says why it stops itself (bounded, see
   * {@link beforeClosing}).
   */
  async _closeLink(peer, told) {
    await beforeClosing(peer.channel, told ? () => peer.stopped : null);
    peer.link.close();
  }

  /**
   * Leaves the swarm: each link closes once its channel sent what it holds, or, after a failure the
   * peers were told of, once each peer closed or answered (bounded); the room is left last.
   */
  async close() {
    if (this._closed) return;
    this._closed = true;
    clearInterval(this._ticker);
    this._signal?.removeEventListener('abort', this._abort);
    const told = Boolean(this._failure) && !peerKnows(this._failure);
    await Promise.all([...[...this._peers.values()].map((peer) => this._closeLink(peer, told)), ...this._closingLinks]);
    this._peers.clear();
    this._signaling.close();
  }
}
