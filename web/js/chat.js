/**
 * The chat page: joins the room named in the URL (`?room=NAME` or `#room=NAME`) or in the
 * form, lists the peers with the state of each link, and shows the messages.
 *
 * Everything a peer sends is inserted with `textContent`, never parsed as HTML.
 *
 * @module chat
 */

import { joinRoom } from './room.js';

/** Messages kept on screen; older ones are removed. */
const MAX_MESSAGES = 500;
/** Key under which the display name is remembered. */
const NAME_KEY = 'peer-chat.name';

const LINK_STATE_TEXT = {
  connecting: 'connecting',
  direct: 'direct',
  relayed: 'relayed (TURN)',
  failed: 'failed',
  closed: 'closed',
};

const $ = (id) => document.getElementById(id);

/** The room and name the page was opened with: query string first, then the fragment. */
function roomFromLocation() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  return {
    room: (query.get('room') ?? fragment.get('room') ?? '').trim(),
    name: (query.get('name') ?? fragment.get('name') ?? '').trim(),
  };
}

function signalingUrl() {
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

function shortId(peerId) {
  return String(peerId).slice(0, 8);
}

function rememberedName() {
  try {
    return localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

function rememberName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // Storage may be disabled; the name just is not remembered.
  }
}

/** Builds an element whose text is set with textContent. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

class ChatPage {
  constructor() {
    this.room = null;
    /** Display names learnt from each peer's messages. */
    this.names = new Map();
    /** Peers whose chat channel is open. */
    this.openPeers = new Set();
    this.everOnline = false;
    this.lostServer = false;
    this.closedReason = null;
  }

  start() {
    const { room, name } = roomFromLocation();
    $('name-input').value = name || rememberedName();
    $('room-input').value = room;
    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.join($('room-input').value.trim(), $('name-input').value.trim());
    });
    $('compose').addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    $('copy-link').addEventListener('click', () => this.copyLink());
    // Leaving the page leaves the room at once, rather than after the server's resume grace.
    addEventListener('pagehide', () => this.room?.close());
    if (room) this.join(room, $('name-input').value.trim());
  }

  join(roomName, name) {
    if (!roomName || this.room) return;
    const displayName = name || `guest-${Math.random().toString(36).slice(2, 6)}`;
    rememberName(name);
    const link = new URL(location.href);
    link.search = new URLSearchParams({ room: roomName }).toString();
    link.hash = '';
    history.replaceState(null, '', link.href);

    $('join-error').hidden = true;
    $('join-view').hidden = true;
    $('chat-view').hidden = false;
    $('room-name').textContent = roomName;
    $('my-name').textContent = displayName;
    $('share-link').href = link.href;
    $('share-link').textContent = link.href;
    document.title = `${roomName} · Peer chat`;

    const room = joinRoom(signalingUrl(), roomName, { name: displayName });
    this.room = room;
    room.addEventListener('welcome', ({ detail }) => {
      $('my-id').textContent = shortId(detail.peerId);
      $('my-id').title = detail.peerId;
      document.body.dataset.peerId = detail.peerId;
    });
    room.addEventListener('signaling-state', ({ detail }) => this.onSignalingState(detail));
    room.addEventListener('peer-joined', ({ detail }) => this.addPeer(detail.peerId));
    room.addEventListener('peer-left', ({ detail }) => this.removePeer(detail.peerId));
    room.addEventListener('link-state', ({ detail }) => this.showLinkState(detail.peerId, detail.state));
    room.addEventListener('channel-open', ({ detail }) => {
      if (detail.label !== 'chat') return;
      this.openPeers.add(detail.peerId);
      const entry = this.peerEntry(detail.peerId);
      if (entry) entry.dataset.chat = 'open';
      this.system(`Connected to ${this.label(detail.peerId)}.`);
      this.updateNotice();
    });
    room.addEventListener('channel-close', ({ detail }) => {
      if (detail.label !== 'chat') return;
      this.openPeers.delete(detail.peerId);
      const entry = this.peerEntry(detail.peerId);
      if (entry) delete entry.dataset.chat;
      this.updateNotice();
    });
    room.addEventListener('message', ({ detail }) => this.onMessage(detail));
    room.addEventListener('server-error', ({ detail }) => {
      this.system(`Server: ${detail.message || detail.code}`);
    });
    room.ready.catch((err) => {
      // Refused (room full, invalid name, ...): back to the form, which says why.
      room.close();
      this.room = null;
      $('join-error').textContent = `Could not join: ${err.message}`;
      $('join-error').dataset.code = err.code ?? '';
      $('join-error').hidden = false;
      $('join-view').hidden = false;
      $('chat-view').hidden = true;
    });
    $('message-input').focus();
  }

  send() {
    const input = $('message-input');
    const text = input.value;
    if (!text.trim() || !this.room) return;
    const sent = this.room.broadcastText(text);
    this.appendMessage({ name: this.room.name, peerId: this.room.peerId, text, mine: true });
    if (sent === 0) this.system('Nobody is connected yet; the message was not delivered.');
    input.value = '';
  }

  onMessage({ peerId, label, name, text, data, malformed }) {
    if (label !== 'chat') return;
    if (malformed) {
      const raw = typeof data === 'string' ? data : `${data?.byteLength ?? 0} bytes of binary data`;
      this.appendMessage({ name: this.names.get(peerId) ?? '', peerId, text: raw.slice(0, 2000), malformed: true });
      return;
    }
    if (name && this.names.get(peerId) !== name) {
      this.names.set(peerId, name);
      const entry = this.peerEntry(peerId);
      if (entry) entry.querySelector('.peer-name').textContent = name;
    }
    this.appendMessage({ name, peerId, text });
  }

  appendMessage({ name, peerId, text, mine = false, malformed = false }) {
    const item = el('li', `message${mine ? ' mine' : ''}${malformed ? ' malformed' : ''}`);
    const meta = el('div', 'meta');
    meta.append(el('span', 'from', name || 'anonymous'));
    if (peerId) meta.append(el('code', 'peer-id', shortId(peerId)));
    if (malformed) meta.append(el('span', 'tag', 'not a chat message'));
    item.append(meta, el('p', 'text', text));
    this.push(item);
  }

  system(text) {
    this.push(el('li', 'system', text));
  }

  push(item) {
    const list = $('messages');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    while (list.childElementCount > MAX_MESSAGES) list.firstElementChild.remove();
    if (atBottom || item.classList.contains('mine')) list.scrollTop = list.scrollHeight;
  }

  label(peerId) {
    const name = this.names.get(peerId);
    return name ? `${name} (${shortId(peerId)})` : shortId(peerId);
  }

  peerEntry(peerId) {
    for (const item of $('peer-list').children) if (item.dataset.peerId === peerId) return item;
    return null;
  }

  addPeer(peerId) {
    if (this.peerEntry(peerId)) return;
    const item = el('li', 'peer');
    item.dataset.peerId = peerId;
    const who = el('span', 'who');
    who.append(el('span', 'peer-name', this.names.get(peerId) ?? 'peer'), ' ', el('code', 'peer-id', shortId(peerId)));
    const state = el('span', 'link-state');
    item.append(who, state);
    $('peer-list').append(item);
    $('no-peers').hidden = true;
    this.showLinkState(peerId, this.room?.linkState(peerId) ?? 'connecting');
  }

  removePeer(peerId) {
    const wasOpen = this.openPeers.delete(peerId);
    this.peerEntry(peerId)?.remove();
    $('no-peers').hidden = $('peer-list').childElementCount > 0;
    if (wasOpen) this.system(`${this.label(peerId)} left.`);
    this.updateNotice();
  }

  showLinkState(peerId, state) {
    const entry = this.peerEntry(peerId);
    if (!entry) return;
    entry.dataset.state = state;
    const badge = entry.querySelector('.link-state');
    badge.dataset.state = state;
    badge.textContent = LINK_STATE_TEXT[state] ?? state;
  }

  onSignalingState(detail) {
    const pill = $('signaling-status');
    pill.dataset.state = detail.state;
    const text = {
      connecting: 'connecting…',
      open: 'online',
      reconnecting: 'server unreachable',
      closed: 'offline',
    };
    pill.textContent = text[detail.state] ?? detail.state;
    if (detail.state === 'open') {
      if (this.lostServer) this.system('The signaling server is back.');
      this.everOnline = true;
      this.lostServer = false;
    } else if (this.everOnline && !this.lostServer) {
      this.lostServer = true;
      this.system('Lost the signaling server.');
    }
    this.closedReason = detail.state === 'closed' ? detail.reason : null;
    this.updateNotice();
  }

  updateNotice() {
    const notice = $('server-notice');
    const state = this.room?.signalingState;
    if (!this.everOnline || state === 'open' || state === 'connecting') {
      notice.hidden = true;
      return;
    }
    const connected = this.openPeers.size;
    let text = 'The signaling server is unreachable. ';
    text += connected
      ? `Chat goes on directly with ${connected} connected peer${connected === 1 ? '' : 's'}; ` +
        'nobody new can join until the server is back.'
      : 'No peer is connected, so messages cannot be delivered until the server is back.';
    if (state === 'reconnecting') text += ' Reconnecting…';
    else if (this.closedReason) text += ` (${this.closedReason})`;
    notice.textContent = text;
    notice.dataset.peers = String(connected);
    notice.hidden = false;
  }

  async copyLink() {
    try {
      await navigator.clipboard.writeText($('share-link').href);
      $('copy-link').textContent = 'Copied';
    } catch {
      $('copy-link').textContent = 'Copy failed';
    }
    setTimeout(() => {
      $('copy-link').textContent = 'Copy';
    }, 1500);
  }
}

// A transfer link (`/#code=7-crossword-banana`, or `/#swarm=…` for several receivers, as
// `peer-client send` prints it) opens the file-transfer page; the fragment, and so the code, never
// reaches the server.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.has('code') || fragment.has('swarm')) {
  location.replace(`transfer.html${location.hash}`);
} else {
  new ChatPage().start();
}
