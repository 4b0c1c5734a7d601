/**
 * WebSocket client for the signaling server (docs/protocol.md).
 *
 * It joins one room, keeps the socket alive with `ping`, and when the socket
 * drops it reconnects with exponential backoff and resumes the session with
 * the `resume_token` from the last `welcome`, so the peer keeps its id and
 * receives the signals sent to it meanwhile.
 *
 * Events (all `CustomEvent`, payload in `detail`):
 * - `welcome`   the server's `welcome` message (also after every reconnect)
 * - `peer_joined`, `peer_left`, `signal`, `error`, `shutdown`  the server's messages
 * - `state`     `{state, attempt?, delayMs?, reason?, code?}` where `state` is one of
 *               `connecting`, `open`, `reconnecting`, `closed` (`code`: the server's error
 *               code when it refused the join)
 *
 * @module signaling
 */

/** Error codes after which reconnecting cannot help. */
const FATAL_CODES = new Set([
  'invalid_room',
  'room_full',
  'too_many_rooms',
  'server_full',
  'unsupported_version',
  'unauthorized',
]);

/** First reconnect delay; doubles on every failed attempt. */
const BACKOFF_START_MS = 250;
/** Longest reconnect delay. */
const BACKOFF_MAX_MS = 15_000;
/** Ping interval when the server does not announce an idle timeout. */
const DEFAULT_PING_MS = 20_000;
/** A socket that answers nothing for this long after a ping is treated as dead. */
const PONG_TIMEOUT_MS = 10_000;
/** Largest server frame this client reads; bigger ones are dropped. */
const MAX_INBOUND_FRAME_CHARS = 1024 * 1024;

/**
 * One signaling session: a room joined over a WebSocket that comes back when it drops.
 */
export class SignalingClient extends EventTarget {
  /**
   * @param {string} url WebSocket URL of the server, e.g. `ws://127.0.0.1:8080/ws`.
   * @param {string} room Room to join.
   */
  constructor(url, room) {
    super();
    /** @readonly */
    this.url = url;
    /** @readonly */
    this.room = room;
    /** @type {string|null} Our peer id in the room, once welcomed. */
    this.peerId = null;
    /** @type {'connecting'|'open'|'reconnecting'|'closed'} */
    this.state = 'connecting';
    /** @type {object|null} Limits announced by the server. */
    this.limits = null;
    this._resumeToken = null;
    this._socket = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._closed = false;
  }

  /** Opens the socket and joins the room. Call once. */
  connect() {
    this._open();
  }

  /**
   * Relays `data` to peer `to` through the server.
   * @param {string} to Peer id.
   * @param {unknown} data Any JSON value.
   * @returns {boolean} false when the socket is not open (the signal is dropped).
   */
  signal(to, data) {
    return this._send({ type: 'signal', to, data });
  }

  /** Leaves the room, closes the socket and stops reconnecting. */
  close() {
    if (this._closed) return;
    this._send({ type: 'leave' });
    this._closed = true;
    this._stopTimers();
    if (this._socket) {
      this._socket.onclose = null;
      this._socket.close(1000, 'leave');
      this._socket = null;
    }
    this._setState('closed', { reason: 'closed by the application' });
  }

  _open() {
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (err) {
      this._fail(`cannot open ${this.url}: ${err.message}`);
      return;
    }
    this._socket = socket;
    socket.onopen = () => {
      const join = { type: 'join', room: this.room };
      if (this._resumeToken) join.resume = this._resumeToken;
      this._send(join);
    };
    socket.onmessage = (event) => this._receive(event.data);
    socket.onclose = () => {
      if (this._socket !== socket) return;
      this._socket = null;
      this._scheduleReconnect();
    };
    // onerror is always followed by onclose, which does the work.
    socket.onerror = () => {};
  }

  _receive(text) {
    if (typeof text !== 'string' || text.length > MAX_INBOUND_FRAME_CHARS) return;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    this._armPing();
    switch (msg.type) {
      case 'welcome':
        this.peerId = msg.peer_id;
        this._resumeToken = msg.resume_token;
        this.limits = msg.limits ?? null;
        this._attempt = 0;
        this._setState('open');
        this._emit('welcome', msg);
        break;
      case 'peer_joined':
      case 'peer_left':
      case 'signal':
        this._emit(msg.type, msg);
        break;
      case 'error':
        this._emit('error', msg);
        if (FATAL_CODES.has(msg.code) && this.state !== 'open') {
          this._fail(msg.message || msg.code, msg.code);
        }
        break;
      case 'shutdown':
        this._emit('shutdown', msg);
        this._dropSocket();
        this._scheduleReconnect(Number(msg.reconnect_after_ms) || 0);
        break;
      default:
        // `pong` and anything newer: the arming above is all they need.
        break;
    }
  }

  _send(msg) {
    const socket = this._socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(msg));
    return true;
  }

  /** Restarts the ping timer: any frame from the server proves the socket alive. */
  _armPing() {
    clearTimeout(this._pongTimer);
    this._pongTimer = null;
    clearTimeout(this._pingTimer);
    const idle = Number(this.limits?.idle_timeout_secs) * 1000;
    const every = idle > 0 ? Math.min(DEFAULT_PING_MS, idle / 3) : DEFAULT_PING_MS;
    this._pingTimer = setTimeout(() => {
      if (!this._send({ type: 'ping' })) return;
      this._pongTimer = setTimeout(() => {
        // No answer: the socket is dead even if the browser has not noticed.
        this._dropSocket();
        this._scheduleReconnect();
      }, PONG_TIMEOUT_MS);
    }, every);
  }

  _dropSocket() {
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
  }

  _scheduleReconnect(minDelayMs = 0) {
    this._stopTimers();
    if (this._closed) return;
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this._attempt);
    const jittered = backoff / 2 + Math.random() * (backoff / 2);
    const delayMs = Math.round(Math.max(minDelayMs, jittered));
    this._attempt += 1;
    this._setState('reconnecting', { attempt: this._attempt, delayMs });
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delayMs);
  }

  _fail(reason, code = null) {
    this._closed = true;
    this._stopTimers();
    this._dropSocket();
    this._setState('closed', { reason, code });
  }

  _stopTimers() {
    clearTimeout(this._retryTimer);
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._retryTimer = this._pingTimer = this._pongTimer = null;
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, ...extra });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
