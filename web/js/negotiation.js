/**
 * What a link does when its connection fails: the policy both clients of this project follow,
 * written as the table "When a link fails" in docs/protocol.md (a test checks this function
 * against it, row by row).
 *
 * @module negotiation
 */

/** ICE restarts tried until the link is connected again. */
export const MAX_ICE_RESTARTS = 2;
/** New connections tried, per link, after a failed DTLS handshake. */
export const MAX_REBUILDS = 2;

/**
 * @typedef {'restart-ice'|'start-over'|'wait'|'give-up'} FailureAction
 */

/**
 * @param {object} link
 * @param {boolean} link.connectedBefore The link has been connected at least once.
 * @param {boolean} link.firstOffer This side made the first offer.
 * @param {boolean} link.polite This side has the larger peer id.
 * @param {boolean} link.attemptsLeft ICE restarts (for `ice`) or new connections (for `dtls`) remain.
 * @param {'ice'|'dtls'} link.failed What failed: every candidate pair, or the handshake over a working path.
 * @returns {FailureAction}
 */
export function onFailure({ connectedBefore, firstOffer, polite, attemptsLeft, failed }) {
  if (failed === 'ice') return !polite && attemptsLeft ? 'restart-ice' : 'wait';
  if (connectedBefore) return 'give-up';
  if (!firstOffer) return 'wait';
  return attemptsLeft ? 'start-over' : 'give-up';
}
