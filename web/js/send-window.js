/**
 * The sender's bound on file data a receiver has not yet taken (docs/transfer.md, "Receive
 * window"): a receiver that announced a window in its `accept` reports what it took with
 * `consumed`, and at most that window stays sent and unreported. As `send_window.rs` natively.
 *
 * @module send-window
 */

import { isCount } from './manifest.js';
import { IDLE_TIMEOUT_MS } from './transfer-limits.js';
import { TransferError, protocolError } from './transfer-error.js';

export class SendWindow {
  /** @param {unknown} limit bytes the receiver holds at most before it took them */
  constructor(limit) {
    if (!isCount(limit)) throw protocolError('the receive window is not a byte count');
    this.limit = limit;
    this.sent = 0;
    this.consumed = 0;
    this._waiter = null;
  }

  /** Whether `bytes` more may go now; a frame larger than the whole window goes once nothing is outstanding. */
  hasRoom(bytes) {
    const outstanding = this.sent - this.consumed;
    return outstanding === 0 || outstanding + bytes <= this.limit;
  }

  /**
   * Takes `text` if it is a `consumed` report (true), else leaves it (false). Throws a protocol
   * error for a report that cannot be: backwards, or beyond what was sent.
   */
  hears(text) {
    if (!text.includes('"consumed"')) return false;
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return false;
    }
    if (message?.type !== 'consumed') return false;
    const bytes = message.bytes;
    if (!isCount(bytes) || bytes < this.consumed || bytes > this.sent) {
      throw protocolError(`consumed ${bytes} bytes, after ${this.consumed} consumed and ${this.sent} sent`);
    }
    this.consumed = bytes;
    this._waiter?.();
    return true;
  }

  /**
   * Waits until `bytes` fit, then counts them as sent; a receiver that takes nothing for
   * {@link IDLE_TIMEOUT_MS} ends the wait with an error.
   * @param {number} bytes
   * @param {(promise: Promise<void>) => Promise<void>} race rejects as soon as the link fails
   */
  async take(bytes, race) {
    while (!this.hasRoom(bytes)) {
      let timer;
      try {
        await race(
          new Promise((resolve, reject) => {
            this._waiter = resolve;
            timer = setTimeout(
              () => reject(new TransferError(`the receiver took no data for ${IDLE_TIMEOUT_MS / 1000} s; stopped`, { kind: 'timeout' })),
              IDLE_TIMEOUT_MS,
            );
          }),
        );
      } finally {
        clearTimeout(timer);
        this._waiter = null;
      }
    }
    this.sent += bytes;
  }
}
