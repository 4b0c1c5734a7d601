/**
 * How a transfer stops: one error type, with a sentence for the user and a kind for the code.
 *
 * @module transfer-error
 */

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

/** Whether the other side already knows why the transfer stopped with `err`: nobody to tell. */
export function peerKnows(err) {
  return err instanceof TransferError && err.peerKnows;
}

/** Control characters of a peer's text become U+FFFD, so it cannot rewrite what is shown. */
export function printable(text) {
  return String(text).replace(/\p{Cc}/gu, '\uFFFD');
}

/** The peer broke the protocol: `what` says how. */
export function protocolError(what) {
  return new TransferError(`the other side broke the transfer protocol: ${what}`);
}

/** The peer went away: `why` says how; a resume may follow. */
export function gone(why) {
  return new TransferError(`the other side went away (${why}); start the same transfer again to go on`, {
    peerKnows: true,
    kind: 'gone',
  });
}
