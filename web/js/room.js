/**
 * Peer-to-peer rooms in the browser: join a room on the signaling server and talk to
 * every other peer in it over WebRTC data channels. The server only introduces the peers;
 * messages go straight from peer to peer, and keep flowing when the server goes away.
 *
 * ```js
 * import { joinRoom } from './js/room.js';
 *
 * const room = joinRoom('wss://example.org/ws', 'lobby', { name: 'Ada' });
 * room.addEventListener('peer-joined', (e) => console.log('peer', e.detail.peerId));
 * room.addEventListener('message', (e) => {
 *   const { peerId, label, text, name, data } = e.detail;
 *   if (text !== undefined) console.log(`${name}: ${text}`); // a chat message
 * });
 * room.addEventListener('channel-open', (e) => room.sendText(e.detail.peerId, 'hello'));
 * await room.ready; // resolves with our peer id once the server welcomed us
 * room.broadcastText('hi all');
 * ```
 *
 * Events (all `CustomEvent`, payload in `detail`):
 * - `peer-joined`      `{peerId}` a peer is in the room (a link to it is being set up)
 * - `peer-left`        `{peerId}` the peer is gone (left the room, or its link closed)
 * - `channel-open`     `{peerId, label, channel}` a data channel can carry messages
 * - `channel-close`    `{peerId, label}`
 * - `message`          `{peerId, label, data}`; on the `chat` channel also `{name, text}`
 *                      for a well-formed chat message, or `{malformed: true}` otherwise
 * - `link-state`       `{peerId, state}` with state `connecting`|`direct`|`relayed`|`failed`|`closed`
 * - `signaling-state`  `{state, attempt?, delayMs?, reason?, code?}` with state
 *                      `connecting`|`open`|`reconnecting`|`closed`; while `reconnecting`,
 *                      open links keep working but no new peer can be reached
 * - `welcome`          `{peerId, resumed, limits}` after every (re)join
 * - `server-error`     `{code, message, peer_id?}` a request was refused by the server
 *
 * @module room
 */

import { SignalingClient } from './signaling.js';
import { CHAT_LABEL, PeerLink } from './peer.js';

export { CHAT_LABEL } from './peer.js';

/** Longest chat text accepted from a peer, in characters; longer is cut. */
export const MAX_CHAT_TEXT_CHARS = 16 * 1024;
/** Longest sender name accepted from a peer, in characters; longer is cut. */
export const MAX_NAME_CHARS = 64;
/** Most links one room keeps, whatever the server says. */
const MAX_LINKS = 64;

/** True for the states in which a link carries data. */
function isUp(state) {
  return state === 'direct' || state === 'relayed';
}

/**
 * Encodes a chat message in the format every client of this project speaks on the
 * `chat` channel: `{"type":"message","name":"...","text":"..."}`.
 * @param {string} name Sender display name.
 * @param {string} text
 * @returns {string}
 */
export function encodeChatMessage(name, text) {
  return JSON.stringify({ type: 'message', name: String(name), text: String(text) });
}

/**
 * Reads a frame received on the `chat` channel.
 * @param {unknown} data
 * @returns {{name: string, text: string}|null} null when it is not a well-formed chat message.
 */
export function decodeChatMessage(data) {
  if (typeof data !== 'string') return null;
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return null;
  }
  if (!msg || msg.type !== 'message' || typeof msg.text !== 'string') return null;
  const name = typeof msg.name === 'string' ? msg.name : '';
  return { name: name.slice(0, MAX_NAME_CHARS), text: msg.text.slice(0, MAX_CHAT_TEXT_CHARS) };
}

/**
 * Joins `room` on the signaling server at `url`.
 *
 * @param {string} url WebSocket URL of the signaling server (`ws://host:port/ws`).
 * @param {string} room Room name (1–128 bytes).
 * @param {object} [options]
 * @param {string} [options.name] Display name sent with chat messages.
 * @param {RTCIceServer[]} [options.iceServers] ICE servers to use instead of the ones the
 *   server announces in `welcome`.
 * @param {RTCIceTransportPolicy} [options.iceTransportPolicy] `relay` to connect through TURN
 *   relays only (hides the peers' addresses from each other); `all` by default.
 * @returns {Room}
 */
export function joinRoom(url, room, options = {}) {
  const joined = new Room(url, room, options);
  joined._signaling.connect();
  return joined;
}

/**
 * A joined room. Create it with {@link joinRoom}.
 */
export class Room extends EventTarget {
  /** @hideconstructor */
  constructor(url, room, { name = '', iceServers, iceTransportPolicy = 'all' } = {}) {
    super();
    /** @readonly Room name. */
    this.room = room;
    /** Display name sent with chat messages. */
    this.name = name;
    /** @type {string|null} Our peer id, once welcomed. */
    this.peerId = null;
    /** @type {Map<string, PeerLink>} */
    this._links = new Map();
    /** Peers the server reported as left whose link still worked at the time. */
    this._departed = new Set();
    this._iceServersOverride = iceServers ?? null;
    this._iceTransportPolicy = iceTransportPolicy;
    this._iceServers = [];
    this._signaling = new SignalingClient(url, room);
    /**
     * Resolves with our peer id at the first welcome; rejects if the join is refused, with an
     * Error whose `code` is the server's error code (`room_full`, `invalid_room`, ...).
     */
    this.ready = new Promise((resolve, reject) => {
      this._ready = { resolve, reject };
    });
    this.ready.catch(() => {}); // callers that never await it must not see an unhandled rejection
    this._wire();
  }

  /** @returns {'connecting'|'open'|'reconnecting'|'closed'} state of the signaling connection. */
  get signalingState() {
    return this._signaling.state;
  }

  /** @returns {string[]} ids of the peers we have a link to. */
  get peers() {
    return [...this._links.keys()];
  }

  /**
   * @param {string} peerId
   * @returns {import('./peer.js').LinkState|null} the link's state, or null for an unknown peer.
   */
  linkState(peerId) {
    return this._links.get(peerId)?.state ?? null;
  }

  /**
   * Sends raw data to one peer.
   * @param {string} peerId
   * @param {string|ArrayBuffer|ArrayBufferView|Blob} data
   * @param {string} [label] Channel label; `chat` unless given.
   * @returns {boolean} false when that channel is not open or its send queue is full.
   */
  send(peerId, data, label = CHAT_LABEL) {
    return this._links.get(peerId)?.send(data, label) ?? false;
  }

  /**
   * Sends raw data to every peer whose channel `label` is open.
   * @param {string|ArrayBuffer|ArrayBufferView|Blob} data
   * @param {string} [label]
   * @returns {number} how many peers it was sent to.
   */
  broadcast(data, label = CHAT_LABEL) {
    let sent = 0;
    for (const link of this._links.values()) if (link.send(data, label)) sent += 1;
    return sent;
  }

  /**
   * Sends a chat message (see {@link encodeChatMessage}) to one peer.
   * @param {string} peerId
   * @param {string} text
   * @returns {boolean}
   */
  sendText(peerId, text) {
    return this.send(peerId, encodeChatMessage(this.name, text));
  }

  /**
   * Sends a chat message to every peer.
   * @param {string} text
   * @returns {number} how many peers it was sent to.
   */
  broadcastText(text) {
    return this.broadcast(encodeChatMessage(this.name, text));
  }

  /**
   * Opens another data channel to a peer, e.g. for a file transfer.
   * @param {string} peerId
   * @param {string} label
   * @param {RTCDataChannelInit} [options]
   * @returns {Promise<RTCDataChannel>} resolves once the channel is open.
   */
  openChannel(peerId, label, options) {
    const link = this._links.get(peerId);
    if (!link) return Promise.reject(new Error(`no link to peer ${peerId}`));
    const channel = link.openChannel(label, options);
    if (channel.readyState === 'open') return Promise.resolve(channel);
    return new Promise((resolve, reject) => {
      channel.addEventListener('open', () => resolve(channel), { once: true });
      channel.addEventListener('close', () => reject(new Error(`channel ${label} closed`)), {
        once: true,
      });
    });
  }

  /**
   * @param {string} peerId
   * @param {string} label
   * @returns {RTCDataChannel|null} the channel, for direct use (e.g. `bufferedAmount`).
   */
  channel(peerId, label = CHAT_LABEL) {
    return this._links.get(peerId)?.channels.get(label) ?? null;
  }

  /** Leaves the room and closes every link. */
  close() {
    this._signaling.close();
    for (const peerId of [...this._links.keys()]) this._dropLink(peerId);
  }

  _wire() {
    const sig = this._signaling;
    sig.addEventListener('welcome', ({ detail }) => this._onWelcome(detail));
    sig.addEventListener('peer_joined', ({ detail }) => {
      // The newcomer offers (it finds us in its welcome); we wait for it.
      this._ensureLink(detail.peer_id, false);
    });
    sig.addEventListener('peer_left', ({ detail }) => this._onPeerLeft(detail.peer_id));
    sig.addEventListener('signal', ({ detail }) => {
      // Only an offer starts a link; a stray candidate or answer from a peer we have no
      // link to (one we just closed, say) is dropped.
      const isOffer = detail.data?.description?.type === 'offer';
      const link = isOffer ? this._ensureLink(detail.from, false) : this._links.get(detail.from);
      link?.handleSignal(detail.data);
    });
    sig.addEventListener('error', ({ detail }) => {
      this._emit('server-error', detail);
      if (detail.code === 'unknown_peer' && detail.peer_id) {
        const link = this._links.get(detail.peer_id);
        if (link && !isUp(link.state)) this._dropLink(detail.peer_id);
      }
      // A signal the server could not carry (its room store was away): negotiate again later.
      if (detail.code === 'internal' && detail.peer_id) this._links.get(detail.peer_id)?.signalLost();
    });
    sig.addEventListener('state', ({ detail }) => {
      if (detail.state === 'closed' && this.peerId === null) {
        const err = new Error(detail.reason ?? 'signaling closed');
        err.code = detail.code ?? null;
        this._ready.reject(err);
      }
      this._emit('signaling-state', detail);
    });
  }

  _onWelcome(welcome) {
    const previousId = this.peerId;
    this._iceServers = this._iceServersOverride ?? welcome.ice_servers ?? [];
    if (previousId !== null && !welcome.resumed) {
      // The server forgot us (it restarted, or the grace period ran out): we are a new
      // peer now, and the others will know us by the new id only. Start over.
      for (const peerId of [...this._links.keys()]) this._dropLink(peerId);
    }
    this.peerId = welcome.peer_id;
    this._emit('welcome', {
      peerId: welcome.peer_id,
      resumed: Boolean(welcome.resumed),
      limits: welcome.limits ?? null,
    });
    const peers = Array.isArray(welcome.peers) ? welcome.peers : [];
    if (welcome.resumed) {
      // No peer_left reaches an absent peer: whoever is no longer listed left meanwhile.
      for (const peerId of [...this._links.keys()]) if (!peers.includes(peerId)) this._onPeerLeft(peerId);
      // Signals sent while we were away may be lost: links still negotiating start again.
      for (const link of this._links.values()) link.signalingResumed();
    }
    // On a fresh join we are the newcomer and offer to everyone present. After a resume,
    // peers we do not know yet joined while we were away and will offer to us.
    const initiator = !welcome.resumed;
    for (const peerId of peers) this._ensureLink(peerId, initiator);
    if (previousId === null) this._ready.resolve(welcome.peer_id);
  }

  _onPeerLeft(peerId) {
    const link = this._links.get(peerId);
    // A link that still works outlives the peer's signaling session: its channel closing,
    // or the link breaking, ends it.
    if (link && isUp(link.state)) this._departed.add(peerId);
    else this._dropLink(peerId);
  }

  /** Returns the link to `peerId`, creating it if needed; null if none may be created. */
  _ensureLink(peerId, initiator) {
    if (typeof peerId !== 'string' || peerId === this.peerId || this.peerId === null) return null;
    const existing = this._links.get(peerId);
    if (existing) return existing;
    if (this._links.size >= MAX_LINKS) return null;
    const link = new PeerLink({
      localId: this.peerId,
      remoteId: peerId,
      iceServers: this._iceServers,
      iceTransportPolicy: this._iceTransportPolicy,
      sendSignal: (data) => this._signaling.signal(peerId, data),
      initiator,
    });
    this._links.set(peerId, link);
    link.addEventListener('channel-open', ({ detail }) => {
      this._emit('channel-open', { peerId, label: detail.label, channel: detail.channel });
    });
    link.addEventListener('channel-close', ({ detail }) => {
      this._emit('channel-close', { peerId, label: detail.label });
    });
    link.addEventListener('message', ({ detail }) => this._onMessage(peerId, detail));
    link.addEventListener('link-state', ({ detail }) => {
      this._emit('link-state', { peerId, state: detail.state });
      // The server already said this peer left; now the link is down too, so it is gone.
      if (this._departed.has(peerId) && !isUp(detail.state)) link.close();
    });
    link.addEventListener('closed', () => {
      if (this._links.get(peerId) !== link) return;
      this._links.delete(peerId);
      this._departed.delete(peerId);
      this._emit('peer-left', { peerId });
    });
    this._emit('peer-joined', { peerId });
    return link;
  }

  _dropLink(peerId) {
    // Closing fires the link's `closed` event, which forgets it and reports `peer-left`.
    this._links.get(peerId)?.close();
  }

  _onMessage(peerId, { label, data }) {
    const detail = { peerId, label, data };
    if (label === CHAT_LABEL) {
      const chat = decodeChatMessage(data);
      if (chat) Object.assign(detail, chat);
      else detail.malformed = true;
    }
    this._emit('message', detail);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
