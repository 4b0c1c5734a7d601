/**
 * One RTCPeerConnection to one remote peer, negotiated through the signaling server.
 *
 * Negotiation follows "perfect negotiation": the polite side is the peer with
 * the larger id (string comparison); on an offer collision the impolite side
 * ignores the incoming offer and the polite side rolls its own back. Candidates
 * trickle as they are found and are queued until the remote description is set.
 * The side that initiates creates the `chat` channel, which makes it offer.
 *
 * A link that never connected starts over on a fresh RTCPeerConnection (new DTLS certificate,
 * fresh ICE) when an offer carries a DTLS fingerprint other than the remote description's: the
 * remote side did so after a failed DTLS handshake. Channels this side created are created again.
 * What a link does when its connection fails (restart ICE, start over, wait, give up) follows the
 * policy shared with peer-client ({@link module:negotiation}).
 *
 * Signal payloads are the browser's own JSON: `{description: {type, sdp}}` or
 * `{candidate: RTCIceCandidateInit | null}`.
 *
 * Events (`CustomEvent`, payload in `detail`):
 * - `channel-open`   `{label, channel}`
 * - `channel-close`  `{label}`
 * - `message`        `{label, data}` (string or ArrayBuffer)
 * - `link-state`     `{state}`, see {@link LinkState}
 * - `closed`         `{}` once the connection is over for good
 *
 * @module peer
 */

import { linkStateFromStats } from './link-state.js';
import { MAX_ICE_RESTARTS, MAX_REBUILDS, onFailure } from './negotiation.js';

/**
 * State of the link to a peer:
 * `connecting` (negotiating or checking), `direct` (host, server- or peer-reflexive
 * candidates), `relayed` (through a TURN server), `failed`, `closed`.
 * @typedef {'connecting'|'direct'|'relayed'|'failed'|'closed'} LinkState
 */

/** Label of the channel the chat convention uses. */
export const CHAT_LABEL = 'chat';
/** Most remote candidates held while the remote description is missing. */
const MAX_QUEUED_CANDIDATES = 256;
/** Most signals waiting to be processed; beyond that the peer is flooding us. */
const MAX_PENDING_SIGNALS = 512;
/** How often the selected candidate pair is read while connected. */
const STATS_EVERY_MS = 2000;
/** First wait before negotiating again after the server could not carry a signal; it doubles. */
const FIRST_RESEND_WAIT_MS = 1000;
/** Longest wait between such attempts. */
const MAX_RESEND_WAIT_MS = 8000;

/** The DTLS fingerprint (`sha-256 AB:...`) a description carries, or null. */
function fingerprintOf(sdp) {
  const match = /^a=fingerprint:(.+)$/m.exec(sdp ?? '');
  return match ? match[1].trim() : null;
}

/** A WebRTC connection to one remote peer. */
export class PeerLink extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.localId Our peer id.
   * @param {string} options.remoteId The remote peer's id.
   * @param {RTCIceServer[]} options.iceServers From `welcome.ice_servers`.
   * @param {(data: object) => void} options.sendSignal Sends a signal payload to the remote peer.
   * @param {boolean} options.initiator True to create the `chat` channel and so send the first offer.
   * @param {RTCIceTransportPolicy} [options.iceTransportPolicy] `relay` to use TURN relays only.
   * @param {{label: string, id: number}[]} [options.negotiatedChannels] Channels both sides create
   *   under these stream ids (no DCEP round trip): the offering side with `openNegotiatedChannels`,
   *   the answering side when it answers an offer.
   */
  constructor({
    localId,
    remoteId,
    iceServers,
    sendSignal,
    initiator,
    iceTransportPolicy = 'all',
    negotiatedChannels = [],
  }) {
    super();
    /** @readonly */
    this.remoteId = remoteId;
    /** @readonly True when this side yields on an offer collision. */
    this.polite = localId > remoteId;
    /** @type {LinkState} */
    this.state = 'connecting';
    /** @type {Map<string, RTCDataChannel>} Open or opening channels by label. */
    this.channels = new Map();
    this._sendSignal = sendSignal;
    this._makingOffer = false;
    this._ignoreOffer = false;
    this._queuedCandidates = [];
    this._pendingSignals = 0;
    this._chain = Promise.resolve();
    this._statsTimer = null;
    this._closed = false;
    this._initiator = Boolean(initiator);
    this._rtcConfig = { iceServers: iceServers ?? [], iceTransportPolicy };
    this._negotiatedChannels = negotiatedChannels;
    this._connectedOnce = false;
    this._rebuilds = 0;
    this._restarts = 0;
    this._resendTimer = null;
    this._resendWaitMs = FIRST_RESEND_WAIT_MS;
    /** @type {Map<string, RTCDataChannelInit>} Channels this side created before connecting. */
    this._ownChannels = new Map();
    /** Remote fingerprints of connections this side left; their descriptions are ignored. */
    this._leftFingerprints = new Set();
    /** Channels of replaced connections: their events are ignored. */
    this._retired = new WeakSet();

    /** @type {RTCPeerConnection} */
    this.pc = this._createConnection();
    if (initiator) this.openChannel(CHAT_LABEL);
  }

  _createConnection() {
    const pc = new RTCPeerConnection(this._rtcConfig);
    const current = () => this.pc === pc && !this._closed;
    pc.onnegotiationneeded = () => {
      if (current()) this._negotiate();
    };
    pc.onicecandidate = ({ candidate }) => {
      // An empty candidate string is an end-of-candidates marker of one m-line; null ends them all.
      if (!current() || (candidate && !candidate.candidate)) return;
      this._sendSignal({ candidate: candidate ? candidate.toJSON() : null });
    };
    pc.ondatachannel = ({ channel }) => {
      if (current()) this._adopt(channel);
    };
    pc.onconnectionstatechange = () => {
      if (current()) this._onConnectionState();
    };
    return pc;
  }

  /**
   * Replaces a connection that never connected with a fresh one and creates this side's channels
   * on it again (which makes it offer). Returns false when the attempts are spent.
   */
  _startOver() {
    if (this._connectedOnce || this._rebuilds >= MAX_REBUILDS) return false;
    this._rebuilds += 1;
    const left = fingerprintOf(this.pc.remoteDescription?.sdp);
    if (left) this._leftFingerprints.add(left);
    const old = this.pc;
    for (const channel of this.channels.values()) this._retired.add(channel);
    this.channels.clear();
    this.pc = this._createConnection();
    old.close();
    this._queuedCandidates = [];
    this._ignoreOffer = false;
    this._makingOffer = false;
    for (const [label, options] of this._ownChannels) {
      this._adopt(this.pc.createDataChannel(label, options));
    }
    return true;
  }

  /**
   * Opens a data channel (ordered and reliable unless `options` say otherwise).
   * @param {string} label
   * @param {RTCDataChannelInit} [options]
   * @returns {RTCDataChannel}
   */
  openChannel(label, options = {}) {
    const existing = this.channels.get(label);
    if (existing && existing.readyState !== 'closed') return existing;
    const channel = this.pc.createDataChannel(label, options);
    if (!this._connectedOnce) this._ownChannels.set(label, options);
    this._adopt(channel);
    return channel;
  }

  /** Opens the negotiated channels, which makes this side offer them. */
  openNegotiatedChannels() {
    for (const { label, id } of this._negotiatedChannels) this.openChannel(label, { negotiated: true, id });
  }

  /**
   * Sends on an open channel.
   * @param {string|ArrayBuffer|ArrayBufferView|Blob} data
   * @param {string} [label]
   * @returns {boolean} false when the channel is not open or its send queue is full.
   */
  send(data, label = CHAT_LABEL) {
    const channel = this.channels.get(label);
    if (!channel || channel.readyState !== 'open') return false;
    try {
      channel.send(data);
    } catch {
      // The browser's send queue is full (or the channel closed just now).
      return false;
    }
    return true;
  }

  /**
   * Handles a signal payload from the remote peer. Signals are processed one at a time, in order.
   * @param {unknown} data
   */
  handleSignal(data) {
    if (this._closed || !data || typeof data !== 'object') return;
    if (this._pendingSignals >= MAX_PENDING_SIGNALS) return;
    this._pendingSignals += 1;
    this._chain = this._chain
      .then(() => this._process(data))
      .catch((err) => console.warn(`signal from ${this.remoteId} failed:`, err))
      .finally(() => {
        this._pendingSignals -= 1;
      });
  }

  /**
   * Tells the link its signaling session was resumed after an outage: signals sent meanwhile may
   * be lost, so a link that is not up negotiates again. A pending offer is sent once more (its SDP
   * now carries the candidates gathered so far); if both sides have answered, the impolite side
   * restarts ICE.
   */
  signalingResumed() {
    if (this._closed) return;
    this._chain = this._chain
      .then(() => {
        if (this._closed || this.pc.connectionState === 'connected') return;
        if (this.pc.signalingState === 'have-local-offer' && this.pc.localDescription) {
          this._sendSignal({ description: this.pc.localDescription.toJSON() });
        } else if (!this.polite && this.pc.remoteDescription) {
          this.pc.restartIce();
        }
      })
      .catch((err) => console.warn(`renegotiation with ${this.remoteId} failed:`, err));
  }

  /**
   * Tells the link the server could not carry one of its signals (its room store was unreachable:
   * `error {code: "internal", peer_id}`). The link negotiates again a little later, as after a
   * signaling outage, waiting 1 s, then 2, 4 and 8 s while signals keep getting lost; one pending
   * attempt at a time, and none once connected.
   */
  signalLost() {
    if (this._closed || this._resendTimer !== null) return;
    this._resendTimer = setTimeout(() => {
      this._resendTimer = null;
      this.signalingResumed();
    }, this._resendWaitMs);
    this._resendWaitMs = Math.min(this._resendWaitMs * 2, MAX_RESEND_WAIT_MS);
  }

  /** Closes the connection and every channel. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._resendTimer);
    clearInterval(this._statsTimer);
    for (const channel of this.channels.values()) channel.close();
    this.pc.close();
    this._setState('closed');
    this._emit('closed', {});
  }

  async _negotiate() {
    try {
      this._makingOffer = true;
      await this.pc.setLocalDescription();
      this._sendSignal({ description: this.pc.localDescription.toJSON() });
    } catch (err) {
      console.warn(`offer to ${this.remoteId} failed:`, err);
    } finally {
      this._makingOffer = false;
    }
  }

  async _process(data) {
    if (this._closed) return;
    if ('description' in data) {
      const description = data.description;
      if (!description || (description.type !== 'offer' && description.type !== 'answer')) return;
      if (typeof description.sdp !== 'string') return;
      const fingerprint = fingerprintOf(description.sdp);
      if (fingerprint && this._leftFingerprints.has(fingerprint)) return;
      const current = fingerprintOf(this.pc.remoteDescription?.sdp);
      if (description.type === 'offer' && fingerprint && current && fingerprint !== current) {
        // The remote side started over on a new connection.
        if (!this._startOver()) {
          this._setState('failed');
          return;
        }
      }
      const collision =
        description.type === 'offer' && (this._makingOffer || this.pc.signalingState !== 'stable');
      this._ignoreOffer = !this.polite && collision;
      if (this._ignoreOffer) return;
      await this.pc.setRemoteDescription({ type: description.type, sdp: description.sdp });
      if (description.type === 'offer') {
        // Created before the answer: they exist before the association is up.
        for (const { label, id } of this._negotiatedChannels) {
          if (!this.channels.has(label)) this._adopt(this.pc.createDataChannel(label, { negotiated: true, id }));
        }
        await this.pc.setLocalDescription();
        this._sendSignal({ description: this.pc.localDescription.toJSON() });
      }
      const queued = this._queuedCandidates.splice(0);
      for (const candidate of queued) await this._addCandidate(candidate);
    } else if ('candidate' in data) {
      const candidate = data.candidate;
      // null marks the end of the remote candidates; nothing to do.
      if (!candidate || typeof candidate !== 'object') return;
      if (!this.pc.remoteDescription) {
        if (this._queuedCandidates.length < MAX_QUEUED_CANDIDATES) {
          this._queuedCandidates.push(candidate);
        }
        return;
      }
      await this._addCandidate(candidate);
    }
  }

  async _addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (err) {
      // Candidates of an offer we ignored fail to apply; that is expected.
      if (!this._ignoreOffer) console.warn(`candidate from ${this.remoteId} refused:`, err);
    }
  }

  _adopt(channel) {
    channel.binaryType = 'arraybuffer';
    const label = channel.label;
    const live = () => !this._retired.has(channel);
    this.channels.set(label, channel);
    const opened = () => this._emit('channel-open', { label, channel });
    if (channel.readyState === 'open') queueMicrotask(opened);
    else channel.addEventListener('open', opened);
    channel.addEventListener('message', (event) => {
      this._emit('message', { label, data: event.data });
    });
    channel.addEventListener('close', () => {
      if (!live()) return;
      if (this.channels.get(label) === channel) this.channels.delete(label);
      this._emit('channel-close', { label });
      // The chat channel closing means the remote peer hung up.
      if (label === CHAT_LABEL) this.close();
    });
  }

  _onConnectionState() {
    if (this._closed) return;
    const state = this.pc.connectionState;
    if (state === 'connected') {
      this._connectedOnce = true;
      this._restarts = 0;
      this._resendWaitMs = FIRST_RESEND_WAIT_MS;
      this._ownChannels.clear();
      this._readStats();
      clearInterval(this._statsTimer);
      this._statsTimer = setInterval(() => this._readStats(), STATS_EVERY_MS);
      return;
    }
    clearInterval(this._statsTimer);
    this._statsTimer = null;
    if (state === 'failed') {
      this._setState('failed');
      this._onFailure();
    } else if (state === 'closed') {
      this.close();
    } else {
      this._setState('connecting');
    }
  }

  /** Restarts ICE, starts over or waits, as the shared policy says (docs/protocol.md). */
  _onFailure() {
    const failed = this.pc.iceConnectionState === 'failed' ? 'ice' : 'dtls';
    const attemptsLeft =
      failed === 'ice' ? this._restarts < MAX_ICE_RESTARTS : this._rebuilds < MAX_REBUILDS;
    const action = onFailure({
      connectedBefore: this._connectedOnce,
      firstOffer: this._initiator,
      polite: this.polite,
      attemptsLeft,
      failed,
    });
    if (action === 'restart-ice') {
      this._restarts += 1;
      this.pc.restartIce();
    } else if (action === 'start-over') {
      this._startOver();
    }
    // `wait` and `give-up`: the link stays failed until the other side offers (or for good).
  }

  async _readStats() {
    try {
      const report = await this.pc.getStats();
      if (this._closed || this.pc.connectionState !== 'connected') return;
      this._setState(linkStateFromStats(report) ?? 'connecting');
    } catch {
      // The connection closed while reading; its state handler reports that.
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('link-state', { state });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
